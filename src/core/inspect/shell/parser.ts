import { createRequire } from "node:module";
import { Language, Parser } from "web-tree-sitter";

/**
 * tree-sitter-bash compiled to WebAssembly, loaded once per process. Both .wasm files ship inside their npm
 * packages, so nothing is fetched or built at install time.
 */
let loading: Promise<Parser> | undefined;

export function loadBashParser(): Promise<Parser> {
  loading ??= (async () => {
    await Parser.init();
    const wasm = createRequire(import.meta.url).resolve("tree-sitter-bash/tree-sitter-bash.wasm");
    const language = await Language.load(wasm);
    const parser = new Parser();
    parser.setLanguage(language);
    return parser;
  })();
  // a failed load must not poison every later attempt
  loading.catch(() => (loading = undefined));
  return loading;
}
