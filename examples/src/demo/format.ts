/**
 * Text formatting for the demo: fixed-width columns (padded before colouring, so ANSI codes never break the
 * alignment) for an 80-100 column terminal.
 */

export interface Paint {
  readonly red: (s: string) => string
  readonly green: (s: string) => string
  readonly yellow: (s: string) => string
  readonly cyan: (s: string) => string
  readonly bold: (s: string) => string
  readonly dim: (s: string) => string
}

const sgr = (code: string) => (s: string) => `\x1b[${code}m${s}\x1b[0m`

export const paint = (color: boolean): Paint =>
  color
    ? { red: sgr("31"), green: sgr("32"), yellow: sgr("33"), cyan: sgr("36"), bold: sgr("1"), dim: sgr("2") }
    : { red: id, green: id, yellow: id, cyan: id, bold: id, dim: id }

const id = (s: string) => s

export const left = (s: string, width: number): string => s.padEnd(width)
export const right = (s: string, width: number): string => s.padStart(width)

/** Milliseconds with a precision that suits their size; seconds from 10 s on. */
export const ms = (value: number): string => {
  if (value === 0) return "0"
  if (value < 1) return value.toFixed(2)
  if (value < 10) return value.toFixed(1)
  if (value < 10_000) return Math.round(value).toString()
  return `${(value / 1000).toFixed(1)}s`
}

export const seconds = (value: number): string => `${value.toFixed(1)}s`

export const count = (value: number): string => value.toLocaleString("en-US")

export const percent = (part: number, whole: number): string => (whole === 0 ? "-" : `${((100 * part) / whole).toFixed(1)}`)

/** Word-wraps `text` to `width` columns; continuation lines get `indent`. */
export const wrap = (text: string, width: number, indent = ""): Array<string> => {
  const lines: Array<string> = []
  let line = ""
  for (const word of text.split(" ")) {
    if (line !== "" && line.length + 1 + word.length > width) {
      lines.push(line)
      line = indent + word
    } else {
      line = line === "" ? word : `${line} ${word}`
    }
  }
  if (line !== "") lines.push(line)
  return lines
}
