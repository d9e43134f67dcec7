// The SDK's copies of the wire tables agree with docs/protocol.md, which the gateway's own
// tests keep equal to its sources (tests/unit/gateway_docs_test.cpp): every error code and
// name, every connection state and reason. No broker needed.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { ConnectionChangeReason, ConnectionState, ErrorCode, RtmError, connectionStateName, errorName } from '../dist/index.js';

const protocol = readFileSync(
  path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../docs/protocol.md'),
  'utf8',
);

/** Rows `| N | NAME | ... |` (NAME with or without backquotes) of the table after `heading`. */
function rows(header) {
  const lines = protocol.split('\n');
  const start = lines.findIndex((l) => l.startsWith(header));
  assert.ok(start >= 0, `table "${header}" in docs/protocol.md`);
  const out = [];
  for (let i = start + 2; i < lines.length && lines[i].startsWith('|'); i++) {
    const [, code, name] = lines[i].split('|').map((c) => c.trim());
    out.push([Number(code), name.replaceAll('`', '')]);
  }
  return out;
}

test('every error code of docs/protocol.md, with its name', () => {
  const table = rows('| code | name | meaning |');
  assert.ok(table.length >= 50, `${table.length} codes`);
  for (const [code, name] of table) {
    assert.equal(ErrorCode[name], code, `ErrorCode.${name}`);
    assert.equal(errorName(code), name);
    assert.equal(new RtmError(code, 'x').codeName, name);
  }
  assert.equal(Object.keys(ErrorCode).length, table.length, 'no code the docs do not have');
});

test('connection states and reasons have the numbers of docs/protocol.md', () => {
  for (const [code, name] of rows('| code | state | meaning |')) {
    assert.equal(connectionStateName(code), name);
    assert.equal(ConnectionState[name === 'ABORTED' ? 'FAILED' : name], code);
  }
  const reasons = rows('| code | reason | meaning |');
  assert.equal(reasons.length, 12);
  for (const [code, name] of reasons) assert.equal(ConnectionChangeReason[name], code, name);
});
