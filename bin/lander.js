#!/usr/bin/env node
// Node entry: the compiled CLI (`npm run build`). Under Deno run src/main.ts directly.
await import('../dist/src/main.js');
