// Runs a TypeScript entry point from a cached JavaScript bundle, for commands whose start-up someone waits for.
// Registering the tsx loader costs about a quarter of a second on every start (the loader thread, then each file
// through it); a bundle made once with esbuild (which tsx itself uses) is plain ESM that Node loads directly.
//
// The bundle and the list of files it was made from live in node_modules/.cache/tabvisor/. It is made again when
// any of those files (or this one) is newer than it, so an edit is picked up on the next start. Packages stay
// outside the bundle (imported from node_modules as usual), and each file's import.meta.url is kept as that
// file's own URL, so paths relative to a source file still resolve. Without esbuild, tsx's loader runs the source.

import { existsSync, mkdirSync, readFileSync, renameSync, statSync, utimesSync, writeFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { basename, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CACHE = join(ROOT, "node_modules", ".cache", "tabvisor");
const SELF = fileURLToPath(import.meta.url);

/** Imports `entry` (a .ts file) and returns its module. */
export async function importTs(entry) {
  const file = resolve(entry);
  const name = basename(file).replace(/\.ts$/, "");
  const out = join(CACHE, `${name}.mjs`);
  const inputsFile = join(CACHE, `${name}.inputs.json`);
  if (!isFresh(out, inputsFile) && !(await makeBundle(file, out, inputsFile))) {
    const { register } = await import("tsx/esm/api");
    register();
    return import(pathToFileURL(file).href);
  }
  // (node --enable-source-maps maps stack traces back to the TypeScript through the .map beside the bundle; not on
  // by default, since reading the map costs start-up time)
  return import(pathToFileURL(out).href);
}

function mtime(path) {
  try { return statSync(path).mtimeMs; } catch { return Infinity; }
}

function isFresh(out, inputsFile) {
  if (!existsSync(out) || !existsSync(inputsFile)) return false;
  const built = mtime(out);
  let inputs;
  try { inputs = JSON.parse(readFileSync(inputsFile, "utf8")); } catch { return false; }
  if (!Array.isArray(inputs) || inputs.length === 0) return false;
  return [SELF, ...inputs].every((f) => mtime(f) <= built);
}

// Packages loaded on first use instead of with the bundle, because importing them costs every start and a start
// does not use them. fflate is the snapshot file's DEFLATE where the platform has none (snapshot/file.ts takes
// CompressionStream when it is there, as in Node), and evaluating it (it builds its Huffman tables) costs about
// 12 ms. In the bundle such a package is a small module of the same exports: each function loads the package
// (require, synchronously) on its first call and hands the call on (`new` included: it gives the package's own
// object, so the stand-in is no base class and no instanceof target); any other export loads it when the bundle
// is evaluated, but only if something imports it (esbuild drops the unused ones).
const LAZY_PACKAGES = ["fflate"];
const LAZY = "lazy-package";
const lazyPackages = {
  name: LAZY,
  setup(build) {
    const names = new RegExp(`^(${LAZY_PACKAGES.map((p) => p.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")).join("|")})$`);
    build.onResolve({ filter: names }, (args) => ({ path: args.path, namespace: LAZY }));
    build.onLoad({ filter: /.*/, namespace: LAZY }, async (args) => {
      const require = createRequire(join(ROOT, "package.json"));
      const exports = require(args.path);
      const lines = [
        `import { createRequire } from "node:module";`,
        `let pkg;`,
        `const load = () => (pkg ??= createRequire(${JSON.stringify(join(ROOT, "package.json"))})(${JSON.stringify(args.path)}));`,
        `const pick = (name) => load()[name];`,
      ];
      for (const [name, value] of Object.entries(exports)) {
        if (!/^[A-Za-z_$][\w$]*$/.test(name) || name === "default") continue;
        lines.push(typeof value === "function"
          ? `export function ${name}(...args) { return new.target ? new (load().${name})(...args) : load().${name}.apply(this, args); }`
          : `export const ${name} = /* @__PURE__ */ pick(${JSON.stringify(name)});`);
      }
      return { contents: lines.join("\n"), loader: "js", resolveDir: ROOT };
    });
  },
};

/** Bundles `entry` into `out`; false when esbuild is not there. */
async function makeBundle(entry, out, inputsFile) {
  let esbuild;
  try { esbuild = await import("esbuild"); } catch { return false; }
  const keepMetaUrl = {
    name: "keep-import-meta-url",
    setup(build) {
      build.onLoad({ filter: /\.[cm]?ts$/ }, async (args) => ({
        contents: (await readFile(args.path, "utf8")).replaceAll("import.meta.url", JSON.stringify(pathToFileURL(args.path).href)),
        loader: "ts",
      }));
    },
  };
  // the bundle is dated from before the sources were read: an edit made while bundling still counts as newer
  const started = new Date();
  const result = await esbuild.build({
    entryPoints: [entry], outfile: out, bundle: true, platform: "node", format: "esm", target: "node20",
    packages: "external", sourcemap: "linked", metafile: true, write: false, absWorkingDir: ROOT, logLevel: "error",
    plugins: [keepMetaUrl, lazyPackages],
  });
  mkdirSync(CACHE, { recursive: true });
  // each file is written under a temporary name and renamed: a second start at the same moment never loads half
  // a file (the code goes last, the list of inputs after it)
  const put = (path, contents) => {
    const tmp = `${path}.${process.pid}.tmp`;
    writeFileSync(tmp, contents);
    renameSync(tmp, path);
  };
  for (const f of result.outputFiles.filter((f) => f.path.endsWith(".map"))) put(f.path, f.contents);
  for (const f of result.outputFiles.filter((f) => !f.path.endsWith(".map"))) {
    put(f.path, f.contents);
    utimesSync(f.path, started, started);
  }
  const files = Object.keys(result.metafile.inputs).filter((p) => !p.startsWith(`${LAZY}:`));
  put(inputsFile, JSON.stringify(files.map((p) => resolve(ROOT, p))));
  return true;
}
