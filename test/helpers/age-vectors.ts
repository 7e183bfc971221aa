// Loads the C2SP CCTV age vectors from test/fixtures/age-cctv: a block of
// `key: value` lines, an empty line, then the age file (zlib-compressed when
// `compressed: zlib`).
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';

export interface AgeVector {
  name: string;
  expect: string;
  payload?: string;
  identities: string[];
  passphrases: string[];
  armored: boolean;
  comment?: string;
  file: Buffer;
}

export const VECTOR_DIR = new URL('../fixtures/age-cctv/', import.meta.url).pathname;

export function loadVectors(dir = VECTOR_DIR): AgeVector[] {
  return readdirSync(dir)
    .filter((n) => n !== 'README.md' && n !== 'SOURCE')
    .sort()
    .map((name) => {
      const raw = readFileSync(join(dir, name));
      const sep = raw.indexOf('\n\n');
      const head = raw.toString('utf8', 0, sep).split('\n');
      let file = raw.subarray(sep + 2);
      const v: AgeVector = { name, expect: '', identities: [], passphrases: [], armored: false, file };
      let compressed = false;
      for (const line of head) {
        const i = line.indexOf(': ');
        const key = line.slice(0, i);
        const value = line.slice(i + 2);
        if (key === 'expect') v.expect = value;
        else if (key === 'payload') v.payload = value;
        else if (key === 'identity') v.identities.push(value);
        else if (key === 'passphrase') v.passphrases.push(value);
        else if (key === 'armored') v.armored = value === 'yes';
        else if (key === 'compressed') compressed = value === 'zlib';
        else if (key === 'comment') v.comment = value;
      }
      if (compressed) file = inflateSync(file);
      v.file = file;
      return v;
    });
}
