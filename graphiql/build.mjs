// Bundles GraphiQL (src/main.jsx) and Monaco's web workers into dist/, which the server
// serves at /graphiql/static/. Run by `npm run build` after `npm ci` (the Makefile does both).
import { rm } from "node:fs/promises";
import { build } from "esbuild";

const common = {
  bundle: true,
  minify: true,
  legalComments: "linked",
  logLevel: "warning",
  define: { "process.env.NODE_ENV": '"production"' },
};

await rm("dist", { recursive: true, force: true });

await build({
  ...common,
  entryPoints: { graphiql: "src/main.jsx" },
  outdir: "dist",
  format: "esm",
  jsx: "automatic",
  // Monaco's codicon font, referenced from its CSS.
  loader: { ".ttf": "file" },
  assetNames: "assets/[name]-[hash]",
});

// Classic workers (no module workers needed); src/workers.js names these files.
await build({
  ...common,
  entryPoints: {
    "workers/editor": "monaco-editor/esm/vs/editor/editor.worker.js",
    "workers/json": "monaco-editor/esm/vs/language/json/json.worker.js",
    "workers/graphql": "monaco-graphql/esm/graphql.worker.js",
  },
  outdir: "dist",
  format: "iife",
});
