// The code editor: CodeMirror 6 with Bash or JavaScript highlighting, switchable in place.
import {
  EditorState, Compartment, EditorView, keymap, lineNumbers, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection, dropCursor, rectangularSelection, crosshairCursor,
  highlightActiveLine, defaultKeymap, history, historyKeymap, indentWithTab, indentOnInput,
  syntaxHighlighting, HighlightStyle, bracketMatching, foldGutter, foldKeymap, StreamLanguage,
  indentUnit, searchKeymap, highlightSelectionMatches, autocompletion, completionKeymap,
  closeBrackets, closeBracketsKeymap, javascript, shell, tags,
} from "../../vendor/codemirror.js";
import { isDark, onSchemeChange } from "../lib/theme.js";

// Colours come from the page's palette (app.css --syn-* and --code-*): custom properties reach
// into the editor's shadow root, so a theme switch recolours it without rebuilding anything.
const highlight = HighlightStyle.define([
  { tag: [tags.keyword, tags.controlKeyword, tags.moduleKeyword, tags.operatorKeyword], color: "var(--syn-keyword)" },
  { tag: [tags.string, tags.special(tags.string), tags.regexp], color: "var(--syn-string)" },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: "var(--syn-comment)", fontStyle: "italic" },
  { tag: [tags.number, tags.bool, tags.null, tags.atom], color: "var(--syn-number)" },
  { tag: [tags.function(tags.variableName), tags.function(tags.propertyName)], color: "var(--syn-function)" },
  { tag: [tags.definition(tags.variableName), tags.variableName], color: "var(--syn-variable)" },
  { tag: [tags.special(tags.variableName), tags.self], color: "var(--syn-special)" },
  { tag: [tags.propertyName], color: "var(--syn-number)" },
  { tag: [tags.typeName, tags.className], color: "var(--syn-special)" },
  { tag: [tags.operator, tags.punctuation], color: "var(--syn-operator)" },
  { tag: tags.standard(tags.variableName), color: "var(--syn-function)" },
  { tag: tags.meta, color: "var(--syn-comment)" },
  { tag: tags.invalid, color: "var(--syn-keyword)", textDecoration: "underline wavy" },
]);

const theme = EditorView.theme({
  "&": { fontSize: "13px", backgroundColor: "var(--code-bg)", color: "var(--fg)", height: "100%" },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.55" },
  ".cm-content": { padding: "8px 0", caretColor: "var(--fg)" },
  ".cm-cursor, .cm-dropCursor": { borderLeftColor: "var(--fg)" },
  ".cm-gutters": { backgroundColor: "var(--code-gutter)", color: "var(--code-gutter-fg)", borderRight: "1px solid var(--code-gutter-line)" },
  ".cm-activeLineGutter": { backgroundColor: "var(--code-active-gutter)", color: "var(--code-active-gutter-fg)" },
  ".cm-activeLine": { backgroundColor: "var(--code-active-line)" },
  "&.cm-focused": { outline: "none" },
  ".cm-selectionMatch": { backgroundColor: "var(--code-match)" },
  ".cm-selectionBackground": { backgroundColor: "var(--code-selection-blur)" },
  "&.cm-focused > .cm-scroller > .cm-selectionLayer .cm-selectionBackground, &.cm-focused .cm-selectionBackground, ::selection":
    { backgroundColor: "var(--code-selection)" },
  ".cm-foldPlaceholder": { backgroundColor: "var(--subtle)", border: "1px solid var(--line)", color: "var(--muted)" },
});

// CodeMirror's dark variant of its search panel and tooltips is a neutral grey; these put them on
// the page's palette (light keeps the library's look).
const darkParts = EditorView.baseTheme({
  "&dark .cm-panels": { backgroundColor: "var(--head)", color: "var(--fg)" },
  "&dark .cm-panels-top": { borderBottom: "1px solid var(--line)" },
  "&dark .cm-panels-bottom": { borderTop: "1px solid var(--line)" },
  "&dark .cm-textfield": { backgroundColor: "var(--control)", color: "var(--fg)", border: "1px solid var(--line-strong)" },
  "&dark .cm-button": {
    backgroundImage: "none", backgroundColor: "var(--control)", color: "var(--fg)", border: "1px solid var(--line-strong)",
    "&:active": { backgroundImage: "none", backgroundColor: "var(--hover)" },
  },
  "&dark .cm-tooltip": { backgroundColor: "var(--panel)", color: "var(--fg)", border: "1px solid var(--line-strong)" },
});

const languageFor = (type) => (type === "bash" ? StreamLanguage.define(shell) : javascript());

/**
 * Creates the editor in `parent`; `onChange()` fires on every edit. The editor lives in a shadow
 * root: CodeMirror then styles itself with constructable stylesheets, which the page's strict CSP
 * (no inline <style>) allows.
 */
export function createCodeEditor(parent, { doc = "", type = "bash", onChange, label } = {}) {
  const language = new Compartment();
  // CodeMirror's own light/dark variants (search panel, tooltips, matches) follow the page.
  const scheme = new Compartment();
  const root = parent.attachShadow({ mode: "open" });
  const view = new EditorView({
    root,
    parent: root,
    state: EditorState.create({
      doc,
      extensions: [
        lineNumbers(),
        highlightActiveLineGutter(),
        highlightSpecialChars(),
        history(),
        foldGutter(),
        drawSelection(),
        dropCursor(),
        EditorState.allowMultipleSelections.of(true),
        indentOnInput(),
        indentUnit.of("  "),
        syntaxHighlighting(highlight),
        bracketMatching(),
        closeBrackets(),
        autocompletion({ activateOnTyping: false }),
        rectangularSelection(),
        crosshairCursor(),
        highlightActiveLine(),
        highlightSelectionMatches(),
        keymap.of([
          ...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap,
          ...foldKeymap, ...completionKeymap, indentWithTab,
        ]),
        language.of(languageFor(type)),
        theme,
        scheme.of(EditorView.darkTheme.of(isDark())),
        darkParts,
        EditorView.contentAttributes.of({ "aria-label": label || "Script code" }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged && onChange) onChange();
        }),
      ],
    }),
  });
  const unsubscribe = onSchemeChange((dark) => view.dispatch({ effects: scheme.reconfigure(EditorView.darkTheme.of(dark)) }));
  return {
    view,
    getValue: () => view.state.doc.toString(),
    setValue(text) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } });
    },
    setLanguage(t) {
      view.dispatch({ effects: language.reconfigure(languageFor(t)) });
    },
    focus: () => view.focus(),
    destroy() {
      unsubscribe();
      view.destroy();
    },
  };
}
