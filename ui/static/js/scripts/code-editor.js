// The code editor: CodeMirror 6 with Bash or JavaScript highlighting, switchable in place.
import {
  EditorState, Compartment, EditorView, keymap, lineNumbers, highlightActiveLineGutter,
  highlightSpecialChars, drawSelection, dropCursor, rectangularSelection, crosshairCursor,
  highlightActiveLine, defaultKeymap, history, historyKeymap, indentWithTab, indentOnInput,
  syntaxHighlighting, HighlightStyle, bracketMatching, foldGutter, foldKeymap, StreamLanguage,
  indentUnit, searchKeymap, highlightSelectionMatches, autocompletion, completionKeymap,
  closeBrackets, closeBracketsKeymap, javascript, shell, tags,
} from "../../vendor/codemirror.js";

const highlight = HighlightStyle.define([
  { tag: [tags.keyword, tags.controlKeyword, tags.moduleKeyword, tags.operatorKeyword], color: "#cf222e" },
  { tag: [tags.string, tags.special(tags.string), tags.regexp], color: "#0a3069" },
  { tag: [tags.comment, tags.lineComment, tags.blockComment], color: "#6e7781", fontStyle: "italic" },
  { tag: [tags.number, tags.bool, tags.null, tags.atom], color: "#0550ae" },
  { tag: [tags.function(tags.variableName), tags.function(tags.propertyName)], color: "#8250df" },
  { tag: [tags.definition(tags.variableName), tags.variableName], color: "#1f2328" },
  { tag: [tags.special(tags.variableName), tags.self], color: "#953800" },
  { tag: [tags.propertyName], color: "#0550ae" },
  { tag: [tags.typeName, tags.className], color: "#953800" },
  { tag: [tags.operator, tags.punctuation], color: "#57606a" },
  { tag: tags.standard(tags.variableName), color: "#8250df" },
  { tag: tags.meta, color: "#6e7781" },
  { tag: tags.invalid, color: "#cf222e", textDecoration: "underline wavy" },
]);

const theme = EditorView.theme({
  "&": { fontSize: "13px", backgroundColor: "#fff", height: "100%" },
  ".cm-scroller": { fontFamily: "var(--mono)", lineHeight: "1.55" },
  ".cm-content": { padding: "8px 0" },
  ".cm-gutters": { backgroundColor: "#f8fafc", color: "#98a2b3", borderRight: "1px solid #eaecf0" },
  ".cm-activeLineGutter": { backgroundColor: "#eef2ff", color: "#344054" },
  ".cm-activeLine": { backgroundColor: "#f5f8ff" },
  "&.cm-focused": { outline: "none" },
  ".cm-selectionMatch": { backgroundColor: "#fff3bf" },
  "&.cm-focused .cm-selectionBackground, ::selection": { backgroundColor: "#cfe0ff" },
});

const languageFor = (type) => (type === "bash" ? StreamLanguage.define(shell) : javascript());

/**
 * Creates the editor in `parent`; `onChange()` fires on every edit. The editor lives in a shadow
 * root: CodeMirror then styles itself with constructable stylesheets, which the page's strict CSP
 * (no inline <style>) allows.
 */
export function createCodeEditor(parent, { doc = "", type = "bash", onChange, label } = {}) {
  const language = new Compartment();
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
        EditorView.contentAttributes.of({ "aria-label": label || "Script code" }),
        EditorView.updateListener.of((u) => {
          if (u.docChanged && onChange) onChange();
        }),
      ],
    }),
  });
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
    destroy: () => view.destroy(),
  };
}
