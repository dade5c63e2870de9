/**
 * docs/configuration.md against the environment table (src/config/table.ts): every variable of the
 * table has its row, with the table's default and meaning, and no row names a variable the table lacks.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ENV_TABLE, type EnvName } from '../../src/config.js';

const DOC = new URL('../../docs/configuration.md', import.meta.url);

/** The row the table asks for. */
const rowFor = (name: EnvName) => `| \`${name}\` | ${ENV_TABLE[name].defaultDoc} | ${ENV_TABLE[name].doc} |`;

/** Every table row of the page whose first cell names variables (`UPPER_CASE` in backticks), with those names. */
function documentedRows(markdown: string): { row: string; names: string[] }[] {
  return markdown
    .split('\n')
    .filter((line) => line.startsWith('|'))
    .map((row) => ({ row, names: [...(row.split('|')[1] ?? '').matchAll(/`([A-Z][A-Z0-9_]*)`/g)].map((m) => m[1]!) }))
    .filter((r) => r.names.length > 0);
}

describe('docs/configuration.md', () => {
  const rows = documentedRows(readFileSync(DOC, 'utf8'));
  const names = Object.keys(ENV_TABLE) as EnvName[];

  it.each(names)('documents %s with the default and meaning of the table', (name) => {
    const own = rows.filter((r) => r.names.includes(name)).map((r) => r.row);
    expect(own).toEqual([rowFor(name)]);
  });

  it('documents nothing the table lacks, one variable a row', () => {
    const documented = rows.flatMap((r) => r.names);
    expect(documented.filter((n) => !(n in ENV_TABLE))).toEqual([]);
    expect(rows.filter((r) => r.names.length > 1).map((r) => r.row)).toEqual([]);
    expect(documented.sort()).toEqual([...names].sort());
  });
});
