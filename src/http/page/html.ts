/**
 * HTML built from template literals with every interpolated value escaped,
 * unless it is already `Html` (the output of another `html` template). No
 * template engine: the pages are a handful of tables and one chart.
 */

import { escapeHtml } from '../../escape-html.ts'

export class Html {
  constructor(readonly text: string) {}
  toString(): string {
    return this.text
  }
}

type Value = Html | string | number | null | undefined | readonly Value[]

function render(value: Value): string {
  if (value === null || value === undefined) return ''
  if (value instanceof Html) return value.text
  if (Array.isArray(value)) return (value as readonly Value[]).map(render).join('')
  return escapeHtml(String(value))
}

export function html(strings: TemplateStringsArray, ...values: Value[]): Html {
  let out = strings[0] ?? ''
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '')
  })
  return new Html(out)
}
