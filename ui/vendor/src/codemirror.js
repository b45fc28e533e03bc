// The editor pieces the dashboard uses, bundled into one ES module by build.mjs.
export { EditorState, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLineGutter, highlightSpecialChars,
  drawSelection, dropCursor, rectangularSelection, crosshairCursor, highlightActiveLine, placeholder,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  indentOnInput, syntaxHighlighting, HighlightStyle, bracketMatching, foldGutter, foldKeymap,
  StreamLanguage, indentUnit,
} from "@codemirror/language";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export { autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap } from "@codemirror/autocomplete";
export { javascript } from "@codemirror/lang-javascript";
export { shell } from "@codemirror/legacy-modes/mode/shell";
export { tags } from "@lezer/highlight";
