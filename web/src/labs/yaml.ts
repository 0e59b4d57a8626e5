// The part of YAML containerlab topology files use, read into plain values: block mappings and sequences (by
// indentation), flow sequences and mappings ([a, b], {node: a, interface: eth1}), quoted and plain scalars, literal
// and folded block scalars (| and >), comments, a leading "---". Anchors, aliases, tags and several documents are
// refused with the line they are on, rather than read wrongly. Not a general YAML reader: only for the importer.

export class YamlError extends Error {
  constructor(readonly line: number, message: string) { super(`line ${line}: ${message}`); }
}

export type YamlValue = string | number | boolean | null | YamlValue[] | { [key: string]: YamlValue };

interface Line { no: number; indent: number; text: string }

export function parseYaml(source: string): YamlValue {
  const raw = source.replace(/\r\n?/g, "\n").split("\n");
  return new Reader(raw).document();
}

class Reader {
  private readonly lines: Line[] = [];
  private i = 0;

  constructor(private readonly raw: string[]) {
    raw.forEach((text, k) => {
      if (/^\s*(#.*)?$/.test(text)) return;
      if (/^\t/.test(text)) throw new YamlError(k + 1, "tabs cannot indent YAML");
      const indent = text.length - text.trimStart().length;
      this.lines.push({ no: k + 1, indent, text: text.trimStart().replace(/\s+$/, "") });
    });
  }

  document(): YamlValue {
    if (this.lines[0]?.text === "---") this.i++;
    if (this.i >= this.lines.length) return null;
    const v = this.block(this.lines[this.i].indent);
    const rest = this.lines[this.i];
    if (rest) throw new YamlError(rest.no, rest.text.startsWith("---") ? "only one YAML document is read" : "this line's indentation does not fit the lines before it");
    return v;
  }

  private block(indent: number): YamlValue {
    const line = this.lines[this.i];
    return isItem(line.text) ? this.sequence(indent) : this.mapping(indent);
  }

  private sequence(indent: number): YamlValue[] {
    const out: YamlValue[] = [];
    for (let line = this.lines[this.i]; line && line.indent === indent && isItem(line.text); line = this.lines[this.i]) {
      const rest = line.text.slice(1).trimStart();
      if (!rest) {
        this.i++;
        const next = this.lines[this.i];
        out.push(next && next.indent > indent ? this.block(next.indent) : null);
      } else if (keyOf(rest, line.no)) {
        // "- key: value": a mapping whose lines are indented as far as its first key
        this.lines[this.i] = { no: line.no, indent: indent + (line.text.length - rest.length), text: rest };
        out.push(this.mapping(this.lines[this.i].indent));
      } else {
        out.push(this.inline(rest, line));
      }
    }
    return out;
  }

  private mapping(indent: number): { [key: string]: YamlValue } {
    const out: { [key: string]: YamlValue } = {};
    for (let line = this.lines[this.i]; line && line.indent === indent && !isItem(line.text); line = this.lines[this.i]) {
      const kv = keyOf(line.text, line.no);
      if (!kv) throw new YamlError(line.no, `expected "key: value", found ${JSON.stringify(line.text)}`);
      if (Object.prototype.hasOwnProperty.call(out, kv.key)) throw new YamlError(line.no, `the key ${JSON.stringify(kv.key)} is given twice`);
      const value = stripComment(kv.rest);
      if (/^[|>][-+]?$/.test(value)) {
        out[kv.key] = this.blockScalar(value, line);
        continue;
      }
      this.i++;
      if (value) { out[kv.key] = this.inline(value, line, true); continue; }
      const next = this.lines[this.i];
      if (next && next.indent > indent) out[kv.key] = this.block(next.indent);
      else if (next && next.indent === indent && isItem(next.text)) out[kv.key] = this.sequence(indent); // "key:\n- a"
      else out[kv.key] = null;
    }
    return out;
  }

  /** A scalar or flow collection on one line (a flow collection may go on over further lines). */
  private inline(text: string, line: Line, advanced = false): YamlValue {
    if (!advanced) this.i++;
    let t = stripComment(text);
    if (t.startsWith("[") || t.startsWith("{")) {
      while (!balanced(t) && this.i < this.lines.length) t += " " + stripComment(this.lines[this.i++].text);
      const flow = new Flow(t, line.no);
      const v = flow.value();
      flow.end();
      return v;
    }
    return scalar(t, line.no);
  }

  /** `|` or `>` and the more indented lines after it (blank lines included). */
  private blockScalar(header: string, line: Line): string {
    this.i++;
    const body: string[] = [];
    let k = line.no; // raw index of the line after the header
    let indent = -1;
    for (; k < this.raw.length; k++) {
      const r = this.raw[k];
      if (!r.trim()) { body.push(""); continue; }
      const ind = r.length - r.trimStart().length;
      if (indent < 0) indent = ind;
      if (ind < indent || ind <= line.indent) break;
      body.push(r.slice(indent));
    }
    while (this.i < this.lines.length && this.lines[this.i].no <= k) this.i++;
    while (body.length && body[body.length - 1] === "") body.pop();
    let text = header[0] === "|" ? body.join("\n") : body.join("\n").replace(/([^\n])\n(?=[^\n])/g, "$1 ");
    if (header[1] !== "-") text += "\n";
    return text;
  }
}

const isItem = (t: string) => t === "-" || t.startsWith("- ");

/** "key: rest" (the key plain or quoted), or undefined when the text is not a mapping entry. */
function keyOf(text: string, no: number): { key: string; rest: string } | undefined {
  let m: RegExpExecArray | null;
  if (text[0] === '"' || text[0] === "'") {
    const end = quotedEnd(text, 0);
    if (end < 0 || !/^:(\s|$)/.test(text.slice(end + 1))) return undefined;
    return { key: String(scalar(text.slice(0, end + 1), no)), rest: text.slice(end + 2).trim() };
  }
  if ((m = /^([^\s#[\]{},][^:#]*?|[^\s#[\]{},]):(?:\s+(.*)|$)/.exec(text))) {
    const key = m[1].trim();
    if (/^[&*!]/.test(key)) throw new YamlError(no, "anchors, aliases and tags are not read");
    return { key, rest: (m[2] ?? "").trim() };
  }
  return undefined;
}

function quotedEnd(text: string, start: number): number {
  const q = text[start];
  for (let k = start + 1; k < text.length; k++) {
    if (q === '"' && text[k] === "\\") { k++; continue; }
    if (text[k] === q) {
      if (q === "'" && text[k + 1] === "'") { k++; continue; }
      return k;
    }
  }
  return -1;
}

/** The text without a trailing " # comment" (a # inside quotes is kept). */
function stripComment(text: string): string {
  for (let k = 0; k < text.length; k++) {
    const c = text[k];
    if (c === '"' || c === "'") { const e = quotedEnd(text, k); if (e < 0) break; k = e; continue; }
    if (c === "#" && (k === 0 || /\s/.test(text[k - 1]))) return text.slice(0, k).trimEnd();
  }
  return text.trim();
}

function balanced(t: string): boolean {
  let depth = 0;
  for (let k = 0; k < t.length; k++) {
    const c = t[k];
    if (c === '"' || c === "'") { const e = quotedEnd(t, k); if (e < 0) return false; k = e; }
    else if (c === "[" || c === "{") depth++;
    else if (c === "]" || c === "}") depth--;
  }
  return depth <= 0;
}

function scalar(t: string, no: number): YamlValue {
  if (t.startsWith('"')) {
    if (quotedEnd(t, 0) !== t.length - 1) throw new YamlError(no, `a quoted string that does not end where the value does: ${t}`);
    try {
      return JSON.parse(t.replace(/\\'/g, "'")) as string;
    } catch {
      throw new YamlError(no, `a double-quoted string with an escape this reader does not know: ${t}`);
    }
  }
  if (t.startsWith("'")) {
    if (quotedEnd(t, 0) !== t.length - 1) throw new YamlError(no, `a quoted string that does not end where the value does: ${t}`);
    return t.slice(1, -1).replace(/''/g, "'");
  }
  if (/^[&*!]/.test(t)) throw new YamlError(no, "anchors, aliases and tags are not read");
  if (t === "" || t === "~" || t === "null") return null;
  if (t === "true" || t === "false") return t === "true";
  if (/^-?(0|[1-9][0-9]*)(\.[0-9]+)?$/.test(t)) return Number(t);
  return t;
}

/** A flow collection: [a, b] and {k: v}, nested. */
class Flow {
  private k = 0;
  constructor(private readonly t: string, private readonly no: number) {}

  value(): YamlValue {
    this.space();
    const c = this.t[this.k];
    if (c === "[") {
      this.k++;
      const out: YamlValue[] = [];
      for (this.space(); this.t[this.k] !== "]"; this.space()) {
        out.push(this.value());
        this.space();
        if (this.t[this.k] === ",") this.k++;
        else if (this.t[this.k] !== "]") throw new YamlError(this.no, `expected "," or "]" in ${this.t}`);
      }
      this.k++;
      return out;
    }
    if (c === "{") {
      this.k++;
      const out: { [key: string]: YamlValue } = {};
      for (this.space(); this.t[this.k] !== "}"; this.space()) {
        const key = this.atom(":");
        if (this.t[this.k] !== ":") throw new YamlError(this.no, `expected ":" after ${JSON.stringify(key)} in ${this.t}`);
        this.k++;
        out[String(key)] = this.value();
        this.space();
        if (this.t[this.k] === ",") this.k++;
        else if (this.t[this.k] !== "}") throw new YamlError(this.no, `expected "," or "}" in ${this.t}`);
      }
      this.k++;
      return out;
    }
    return this.atom("");
  }

  end(): void {
    this.space();
    if (this.k < this.t.length) throw new YamlError(this.no, `unexpected ${JSON.stringify(this.t.slice(this.k))} after a flow collection`);
  }

  /** A scalar in a flow collection, up to a "," "]" "}" (or `stop`). */
  private atom(stop: string): YamlValue {
    this.space();
    const c = this.t[this.k];
    if (c === undefined) throw new YamlError(this.no, `a flow collection that does not end: ${this.t}`);
    if (c === '"' || c === "'") {
      const e = quotedEnd(this.t, this.k);
      if (e < 0) throw new YamlError(this.no, `a quoted string that does not end: ${this.t}`);
      const v = scalar(this.t.slice(this.k, e + 1), this.no);
      this.k = e + 1;
      return v;
    }
    const start = this.k;
    while (this.k < this.t.length && !",]}".includes(this.t[this.k]) && !(stop && this.t[this.k] === stop && /[\s,\]}]|$/.test(this.t[this.k + 1] ?? ""))) this.k++;
    return scalar(this.t.slice(start, this.k).trim(), this.no);
  }

  private space(): void {
    while (this.k < this.t.length && /\s/.test(this.t[this.k])) this.k++;
  }
}
