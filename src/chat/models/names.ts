/**
 * Names that cannot be impersonated. A name is shown as its owner typed it, but compared by its key:
 * the NFKC case-folded form, so `Alice`, `alice` and `ａｌｉｃｅ` are one name. A name whose letters mix
 * scripts (Latin `a` beside Cyrillic `а`) is refused: that is how look-alikes are made (Unicode TS #39).
 */

/** The lesson's sender name for notices; no client may take it. */
export const SYSTEM_USER = 'System';
export const MAX_NAME_LENGTH = 32;

/**
 * The form names are compared in. Upper- then lower-casing folds what lower-casing alone misses
 * (ß and SS, ς and σ); NFKC maps compatibility forms (full-width letters, ligatures) to plain ones.
 */
export function nameKey(name: string): string {
  return name.normalize('NFKC').toUpperCase().toLowerCase().normalize('NFKC');
}

/**
 * Why a requested name cannot be used, or undefined if it can (uniqueness is the Hub's call).
 * Names are 1-32 characters with no whitespace; control and invisible formatting characters are
 * refused too, so nobody can pose as someone else with a zero-width or right-to-left mark.
 */
export function nameProblem(name: string): string | undefined {
  const length = [...name].length;
  if (length === 0) return 'name must not be empty';
  if (length > MAX_NAME_LENGTH) return `name must be at most ${MAX_NAME_LENGTH} characters`;
  if (/\s/u.test(name)) return 'name must not contain whitespace';
  if (/[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}]/u.test(name)) {
    return 'name must not contain control or invisible characters';
  }
  // A first message starting with "{" is a JSON hello (the v2 protocol), never a name.
  if (name.startsWith('{')) return 'name must not start with "{"';
  if (nameKey(name) === nameKey(SYSTEM_USER)) return `the name ${SYSTEM_USER} is reserved`;
  return scriptProblem(name.normalize('NFKC'));
}

/**
 * UTS #39 "highly restrictive": all letters in one script, or in one of the combinations that
 * languages use together (Japanese, Chinese with Bopomofo, Korean, each with Latin).
 */
const COMBINATIONS: readonly (readonly string[])[] = [
  ['Latin', 'Han', 'Hiragana', 'Katakana'],
  ['Latin', 'Han', 'Bopomofo'],
  ['Latin', 'Han', 'Hangul'],
];

function scriptProblem(name: string): string | undefined {
  if (/^[\x00-\x7f]*$/.test(name)) return undefined; // ASCII: Latin letters only
  const sets: string[][] = [];
  for (const ch of name) {
    const set = scriptsOf(ch);
    if (set.length > 0) sets.push(set);
  }
  if (sets.length === 0) return undefined;
  if (sets[0]!.some((script) => sets.every((set) => set.includes(script)))) return undefined;
  if (COMBINATIONS.some((combo) => sets.every((set) => set.some((s) => combo.includes(s))))) return undefined;
  const first = sets[0]![0]!;
  const other = sets.find((set) => !set.includes(first))![0]!;
  return `name mixes ${first.replace(/_/g, ' ')} and ${other.replace(/_/g, ' ')} letters: use one script`;
}

/**
 * The scripts a character is used with (its Script_Extensions), or [] for characters every script
 * shares (digits, punctuation, combining marks). Common scripts are tried first: names are short,
 * but a join storm checks thousands of them.
 */
function scriptsOf(ch: string): string[] {
  if (COMMON_OR_INHERITED.test(ch)) return [];
  const found: string[] = [];
  for (const [script, pattern] of FREQUENT) if (pattern.test(ch)) found.push(script);
  if (found.length > 0) return found;
  for (const [script, pattern] of RARE) if (pattern.test(ch)) found.push(script);
  return found.length > 0 ? found : ['Unknown'];
}

const COMMON_OR_INHERITED = /^[\p{scx=Common}\p{scx=Inherited}]$/u;

const patterns = (names: readonly string[]): [string, RegExp][] =>
  names.map((n) => [n, new RegExp(`^\\p{Script_Extensions=${n}}$`, 'u')]);

const FREQUENT = patterns([
  'Latin', 'Cyrillic', 'Greek', 'Han', 'Hiragana', 'Katakana', 'Hangul', 'Bopomofo', 'Arabic', 'Hebrew',
  'Devanagari', 'Bengali', 'Thai', 'Armenian', 'Georgian', 'Tamil', 'Telugu', 'Ethiopic',
]);

const RARE = patterns([
  'Adlam', 'Ahom', 'Anatolian_Hieroglyphs', 'Avestan', 'Balinese', 'Bamum', 'Bassa_Vah', 'Batak', 'Bhaiksuki',
  'Brahmi', 'Braille', 'Buginese', 'Buhid', 'Canadian_Aboriginal', 'Carian', 'Caucasian_Albanian', 'Chakma',
  'Cham', 'Cherokee', 'Chorasmian', 'Coptic', 'Cuneiform', 'Cypriot', 'Cypro_Minoan', 'Deseret', 'Dives_Akuru',
  'Dogra', 'Duployan', 'Egyptian_Hieroglyphs', 'Elbasan', 'Elymaic', 'Glagolitic', 'Gothic', 'Grantha',
  'Gujarati', 'Gunjala_Gondi', 'Gurmukhi', 'Hanifi_Rohingya', 'Hanunoo', 'Hatran', 'Imperial_Aramaic',
  'Inscriptional_Pahlavi', 'Inscriptional_Parthian', 'Javanese', 'Kaithi', 'Kannada', 'Kawi', 'Kayah_Li',
  'Kharoshthi', 'Khitan_Small_Script', 'Khmer', 'Khojki', 'Khudawadi', 'Lao', 'Lepcha', 'Limbu', 'Linear_A',
  'Linear_B', 'Lisu', 'Lycian', 'Lydian', 'Mahajani', 'Makasar', 'Malayalam', 'Mandaic', 'Manichaean', 'Marchen',
  'Masaram_Gondi', 'Medefaidrin', 'Meetei_Mayek', 'Mende_Kikakui', 'Meroitic_Cursive', 'Meroitic_Hieroglyphs',
  'Miao', 'Modi', 'Mongolian', 'Mro', 'Multani', 'Myanmar', 'Nabataean', 'Nag_Mundari', 'Nandinagari',
  'New_Tai_Lue', 'Newa', 'Nko', 'Nushu', 'Nyiakeng_Puachue_Hmong', 'Ogham', 'Ol_Chiki', 'Old_Hungarian',
  'Old_Italic', 'Old_North_Arabian', 'Old_Permic', 'Old_Persian', 'Old_Sogdian', 'Old_South_Arabian',
  'Old_Turkic', 'Old_Uyghur', 'Oriya', 'Osage', 'Osmanya', 'Pahawh_Hmong', 'Palmyrene', 'Pau_Cin_Hau',
  'Phags_Pa', 'Phoenician', 'Psalter_Pahlavi', 'Rejang', 'Runic', 'Samaritan', 'Saurashtra', 'Sharada',
  'Shavian', 'Siddham', 'SignWriting', 'Sinhala', 'Sogdian', 'Sora_Sompeng', 'Soyombo', 'Sundanese',
  'Syloti_Nagri', 'Syriac', 'Tagalog', 'Tagbanwa', 'Tai_Le', 'Tai_Tham', 'Tai_Viet', 'Takri', 'Tangsa', 'Tangut',
  'Thaana', 'Tibetan', 'Tifinagh', 'Tirhuta', 'Toto', 'Ugaritic', 'Vai', 'Vithkuqi', 'Wancho', 'Warang_Citi',
  'Yezidi', 'Yi', 'Zanabazar_Square',
]);
