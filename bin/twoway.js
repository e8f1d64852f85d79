#!/usr/bin/env node
// The CLI is written in TypeScript and run through tsx's loader, so the
// package needs no build step between `npm install` and `twoway`.
import { register } from 'tsx/esm/api';
register();
await import('../src/cli/index.ts');
