/**
 * Names that cannot be impersonated: one name regardless of case and compatibility forms, no mixed
 * scripts, no invisible characters, never the System user, never a JSON hello.
 */
import { describe, expect, it } from 'vitest';
import { nameKey, nameProblem } from '../src/chat/models/names';

describe('nameKey: the form names are compared in', () => {
  it.each([
    ['Alice', 'alice'],
    ['ALICE', 'alice'],
    ['ａｌｉｃｅ', 'alice'], // full-width Latin
    ['Straße', 'strasse'],
    ['STRASSE', 'strasse'],
    ['ΣΊΣΥΦΟΣ', 'σίσυφος'],
    ['σίσυφοσ', 'σίσυφος'], // sigma and final sigma are one letter
    ['ﬁsh', 'fish'], // ligature
  ])('%s -> %s', (name, key) => {
    expect(nameKey(name)).toBe(key);
  });
});

describe('nameProblem', () => {
  const good = ['alice', 'Bob_2', 'Ελένη', 'Иван', '山田太郎', 'やまだ'];
  good.push('Yamadaさん', 'Kim철수', 'José', 'x'.repeat(32));
  it.each(good)('accepts %s', (name) => {
    expect(nameProblem(name)).toBeUndefined();
  });

  it.each([
    ['аlice', 'name mixes Cyrillic and Latin letters: use one script'], // Cyrillic а
    ['pаypal', 'name mixes Latin and Cyrillic letters: use one script'],
    ['ΑBC', 'name mixes Greek and Latin letters: use one script'], // Greek capital alpha
    ['Иванov', 'name mixes Cyrillic and Latin letters: use one script'],
    ['{"type":"hello"}', 'name must not start with "{"'],
    ['{alice', 'name must not start with "{"'],
    ['ｓｙｓｔｅｍ', 'the name System is reserved'],
    ['', 'name must not be empty'],
    ['a b', 'name must not contain whitespace'],
    ['a\u200bb', 'name must not contain control or invisible characters'],
    ['x'.repeat(33), 'name must be at most 32 characters'],
  ])('refuses %j: %s', (name, why) => {
    expect(nameProblem(name)).toBe(why);
  });
});
