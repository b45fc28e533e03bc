// Light syntax colours for single lines of code (the lines of a diff), from the same parsers the
// editor uses. A line is parsed on its own, so a string or comment spanning lines may be coloured
// only on its first line: good enough to read a diff by, and never wrong about the text itself.
import { StreamLanguage, javascript, shell } from "../../vendor/codemirror.js";
import { h } from "../lib/dom.js";

const parsers = { bash: StreamLanguage.define(shell).parser, js: javascript().language.parser };

// Shell tokens are named by their highlight tag ("keyword", "variableName.standard", …);
// JavaScript nodes by their grammar name, keywords by themselves.
const SHELL = {
  keyword: "keyword", string: "string", "string.special": "string", comment: "comment", meta: "comment",
  number: "number", atom: "number", "variableName.standard": "function", "variableName.definition": "special",
  operator: "operator", attribute: "special",
};
const JS = {
  String: "string", TemplateString: "string", RegExp: "string", LineComment: "comment", BlockComment: "comment",
  Number: "number", BooleanLiteral: "number", null: "number", PropertyName: "number", VariableDefinition: "variable",
};
const JS_KEYWORDS = new Set(("async await break case catch class const continue debugger default delete do else export "
  + "extends finally for from function if import in instanceof let new of return static super switch this throw try "
  + "typeof var void while with yield").split(" "));

const classFor = (lang, name) => (lang === "bash" ? SHELL[name] : JS[name] || (JS_KEYWORDS.has(name) ? "keyword" : null));

/** Text and coloured spans for one line; `type` is the script's type (bash, node, browser). */
export function highlightLine(text, type) {
  const lang = type === "bash" ? "bash" : "js";
  // Very long lines (minified code, data) are shown plain: colouring them helps nobody.
  if (!text.trim() || text.length > 2000) return [text];
  const out = [];
  let at = 0;
  parsers[lang].parse(text).iterate({
    enter(node) {
      const cls = classFor(lang, node.name);
      if (!cls || node.from < at) return true;
      if (node.from > at) out.push(text.slice(at, node.from));
      out.push(h(`span.tok-${cls}`, text.slice(node.from, node.to)));
      at = node.to;
      return false;
    },
  });
  if (at < text.length) out.push(text.slice(at));
  return out;
}
