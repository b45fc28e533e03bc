// ANSI escape parsing (SGR colours and decorations) into structured chunks; the dashboard
// turns the chunks into DOM nodes itself, never HTML strings.
export { default as Anser } from "anser";
