#!/usr/bin/env node
// HCL helpers for scripts/check-terraform.sh, on HashiCorp's own HCL parser and formatter
// compiled to WebAssembly (@cdktf/hcl2json, @cdktf/hcl-tools; no Terraform binary needed).
//
//   node hcl.js parse ROOT FILE...      print {"<file relative to ROOT>": <hcl2json of it>, ...};
//                                       exit 1 naming every file that does not parse
//   node hcl.js fmt-check FILE...       exit 1 naming every file whose text differs from
//                                       hclwrite.Format of it (what `terraform fmt` writes),
//                                       with the first differing line
//
// NODE_PATH must lead to the two packages (check-terraform.sh installs them).
"use strict";
const fs = require("fs");
const path = require("path");

async function parseFiles(root, files) {
  const { parse } = require("@cdktf/hcl2json");
  const out = {};
  const bad = [];
  for (const f of files) {
    try {
      out[path.relative(root, f)] = await parse(f, fs.readFileSync(f, "utf8"));
    } catch (e) {
      bad.push(`${f}: does not parse: ${String(e && e.message ? e.message : e).trim()}`);
    }
  }
  if (bad.length) {
    for (const b of bad) console.error(b);
    process.exit(1);
  }
  process.stdout.write(JSON.stringify(out) + "\n");
}

async function fmtCheck(files) {
  const { format } = require("@cdktf/hcl-tools");
  let bad = 0;
  for (const f of files) {
    const src = fs.readFileSync(f, "utf8");
    const want = await format(src);
    if (want !== src) {
      bad++;
      const a = src.split("\n");
      const b = want.split("\n");
      let i = 0;
      while (i < a.length && i < b.length && a[i] === b[i]) i++;
      console.error(`${f}:${i + 1}: not formatted like terraform fmt`);
      console.error(`  have: ${JSON.stringify(a[i] ?? "<end of file>")}`);
      console.error(`  want: ${JSON.stringify(b[i] ?? "<end of file>")}`);
    }
  }
  if (bad) process.exit(1);
}

async function main() {
  const [cmd, ...args] = process.argv.slice(2);
  if (cmd === "parse" && args.length >= 1) return parseFiles(args[0], args.slice(1));
  if (cmd === "fmt-check") return fmtCheck(args);
  console.error("usage: hcl.js parse ROOT FILE... | hcl.js fmt-check FILE...");
  process.exit(2);
}

main().catch((e) => {
  console.error(`hcl.js: ${e && e.stack ? e.stack : e}`);
  process.exit(1);
});
