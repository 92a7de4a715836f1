// Makes tests/fixtures/tokenizer-goldens/*.json: a seeded corpus and the ids HuggingFace's tokenizer gives for
// each line, computed by transformers.js (an independent implementation of HuggingFace tokenizers, in JavaScript).
//
//   mkdir /tmp/hfjs && cd /tmp/hfjs && npm install @huggingface/transformers@3.8.1
//   node /path/to/repo/tools/make-tokenizer-goldens.mjs /path/to/repo
//
// The corpus is generated here from a fixed seed, so the goldens can be remade and checked exactly.
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

const repo = process.argv[2] ?? '.';
const { PreTrainedTokenizer } = await import(pathToFileURL(path.resolve('node_modules/@huggingface/transformers/dist/transformers.node.mjs')).href);
const version = JSON.parse(fs.readFileSync('node_modules/@huggingface/transformers/package.json', 'utf8')).version;

// mulberry32: a small seeded PRNG, so the corpus is the same on every run.
function rng(seed) {
  return () => {
    seed |= 0; seed = (seed + 0x6D2B79F5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const random = rng(20261202);
const pick = (list) => list[Math.floor(random() * list.length)];
const int = (lo, hi) => lo + Math.floor(random() * (hi - lo + 1));

const prose = [
  'Once upon a time, there was a little girl named Lily.', 'The quick brown fox jumps over the lazy dog.',
  "She said: \"I don't know, but we'll see; it's fine.\"", "THEY'RE HERE. You've GOT to be kidding; I'M done, he'd say.",
  'Il était une fois une petite fille qui aimait les fleurs.', 'Der schnelle braune Fuchs springt über den faulen Hund.',
  'El perro corre rápidamente por el parque soleado.', 'Жили-были дед да баба, и была у них курочка Ряба.',
  '我们今天去公园散步，天气很好。', '今日はいい天気ですね。散歩に行きましょう。', '안녕하세요, 만나서 반갑습니다.',
  'مرحبا بكم في عالم البرمجة', 'नमस्ते, आप कैसे हैं?', 'Γειά σου κόσμε, τι κάνεις;', 'שלום עולם, מה שלומך?',
  'สวัสดีครับ ยินดีต้อนรับ', 'Xin chào, bạn có khỏe không?', 'Ça coûte 12,50 € — pas cher !', 'Straße, Grüße, Ärger, Öl, Übermut.',
  'ქართული ენა ლამაზია', 'Հայերեն լեզու', 'ᐃᓄᒃᑎᑐᑦ', 'Türkçe: ıIİi ğüşöç', 'Polski: zażółć gęślą jaźń', 'Čeština: příliš žluťoučký kůň',
  'Emoji: 😀🚀🔥 and ✨ sparkles', 'Family: 👨‍👩‍👧‍👦, flags: 🇫🇷🇯🇵, skin: 👍🏽', '«quoted» “text” ‘here’ …', 'naïve café résumé façade',
  'This is a test sentence.', 'Hello world', 'user', 'assistant', 'a', 'ab', ' ', '  ', '', '—', '\u00a0non-breaking\u00a0space',
];
const code = [
  'def f(x):\n    return x ** 2  # square\n', 'for (int i = 0; i < n; i++) { sum += a[i]; }', 'https://example.com/path?q=1&r=2#frag',
  'SELECT id, name FROM users WHERE age >= 18 ORDER BY name;', 'const add = (a, b) => a + b; console.log(add(2, 3));',
  '<div class="x">Hello &amp; bye</div>', '{"key": [1, 2.5, -3e10, true, null]}', 'fn main() {\n\tprintln!("{}", 42);\n}',
  '    indented\n\tTabbed\r\nWindows line\r\n', 'x = y +++ z --- w ==== v !== u', "it's 'quoted' and \"double\"",
  '#include <stdio.h>\nint main(void) { return 0; }', '$env:PATH -split [IO.Path]::PathSeparator | Where-Object { $_ }',
];
const specials3 = ['<|begin_of_text|>', '<|end_of_text|>', '<|eot_id|>', '<|start_header_id|>', '<|end_header_id|>', '<|reserved_special_token_5|>'];
const specials2 = ['<s>', '</s>', '<unk>'];
// Qwen3: special tokens and added tokens that are not special (<think>, <tool_call>), all matched in the text.
const specialsQwen = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<think>', '</think>', '<tool_call>', '</tool_response>', '<|vision_pad|>'];
const spaces = [' ', '  ', '   ', '\t', '\n', '\n\n', '\r\n', ' \n ', '\t \t', '      ', '\u3000', '\u2003'];
// Assigned code points from many blocks, BMP and beyond (letters and digits outside the BMP included).
const ranges = [
  [0x20, 0x7e], [0xa1, 0x17f], [0x370, 0x3ff], [0x400, 0x4ff], [0x590, 0x5ea], [0x620, 0x64a], [0x905, 0x939], [0xe01, 0xe3a],
  [0x10d0, 0x10fa], [0x3041, 0x3096], [0x30a1, 0x30fa], [0x4e00, 0x9fa5], [0xac00, 0xd7a3], [0x2000, 0x206f], [0x2190, 0x21ff],
  [0x2200, 0x22ff], [0x2500, 0x257f], [0xff01, 0xff5e], [0x1f300, 0x1f5ff], [0x1f600, 0x1f64f], [0x1f900, 0x1f9ff],
  [0x1d400, 0x1d44f], [0x1d7ce, 0x1d7ff], [0x20000, 0x2a6df], [0x10400, 0x1044f], [0x0, 0x1f],
];
function randomUnicode(n) {
  let s = '';
  for (let i = 0; i < n; i++) { const [lo, hi] = pick(ranges); s += String.fromCodePoint(int(lo, hi)); }
  return s;
}
function digits() {
  return pick([String(int(0, 9)), String(int(10, 99999)), String(int(1e6, 1e12)), `${int(0, 999)}.${int(0, 99999)}`,
    `${int(1, 9)},${int(100, 999)},${int(100, 999)}`, `0x${int(0, 1e9).toString(16)}`, '١٢٣٤٥', '१२३', '①②③', '½ ¾', '²³']);
}

function corpus(specials) {
  const lines = [...prose, ...code];
  for (const s of specials) lines.push(`${s}Hello`, `Hello ${s} world`, `${s}${s}`, `a${s}b`, ` ${s} `);
  for (let i = 0; i < 400; i++) lines.push(Array.from({ length: int(2, 12) }, () => pick([pick(prose), pick(spaces), digits(), pick(code), randomUnicode(int(1, 6))])).join(pick(['', ' ', pick(spaces)])));
  for (let i = 0; i < 300; i++) lines.push(randomUnicode(int(1, 40)));
  for (let i = 0; i < 100; i++) lines.push(Array.from({ length: int(1, 8) }, () => pick(spaces)).join('') + pick(prose) + Array.from({ length: int(0, 4) }, () => pick(spaces)).join(''));
  for (let i = 0; i < 100; i++) lines.push(Array.from({ length: int(1, 20) }, digits).join(pick(['', ' ', ',', '-', '\n'])));
  for (let i = 0; i < 100; i++) lines.push(pick(["'s", "'S", "'t", "'re", "'VE", "'m", "'ll", "'D", "'x", "''", "'ſ"]) + pick(['', ' ', 'word', pick(prose)]));
  for (let i = 0; i < 60; i++) lines.push(pick(specials) + pick(prose) + pick(specials) + randomUnicode(3));
  // Where implementations of the pattern could part: U+FEFF is \s to JavaScript but not to Rust; (?i) folds ſ to s.
  lines.push('a\uFEFFb', '\uFEFF hello', 'x \uFEFF\uFEFF y', "it'ſ", "'ſword", "DON'ſ stop", "'\u017Fll");
  return lines;
}

function make(name, folder, specials, extra = []) {
  const json = JSON.parse(fs.readFileSync(path.join(repo, 'tests/fixtures', folder, 'tokenizer.json'), 'utf8'));
  const config = JSON.parse(fs.readFileSync(path.join(repo, 'tests/fixtures', folder, 'tokenizer_config.json'), 'utf8'));
  const tokenizer = new PreTrainedTokenizer(json, config);
  const lines = [...corpus(specials), ...extra];
  const cases = lines.map((text) => ({ text, ids: Array.from(tokenizer.encode(text, { add_special_tokens: false })) }));
  const out = {
    about: `ids from HuggingFace's tokenizer for tests/fixtures/${folder}/tokenizer.json, computed by transformers.js ${version} ` +
      `(PreTrainedTokenizer.encode with add_special_tokens: false) on a corpus generated by tools/make-tokenizer-goldens.mjs (seed 20261202).`,
    tokenizer: `${folder}/tokenizer.json`,
    cases,
  };
  fs.mkdirSync(path.join(repo, 'tests/fixtures/tokenizer-goldens'), { recursive: true });
  fs.writeFileSync(path.join(repo, 'tests/fixtures/tokenizer-goldens', `${name}.json`), JSON.stringify(out));
  console.log(`${name}: ${cases.length} lines, ${cases.reduce((n, c) => n + c.ids.length, 0)} ids`);
}

make('llama3', 'llama3-tokenizer', specials3);
make('mistral', 'llama2-tokenizer', specials2);
// Made last, so that the two above keep their corpus (one seeded stream). Qwen's tokenizer normalizes to NFC first:
// decomposed and composed forms, and a chat turn as its template writes one.
make('qwen3', 'qwen3-tokenizer', specialsQwen, [
  'e\u0301 vs \u00e9', 'A\u030a \u212b \u00c5', '\u1100\u1161\u11a8 \uac01', 'Cafe\u0301 na\u0308ive', '\u0915\u093c \u0958', 'ﬁ ﬂ ① ＡＢＣ',
  '<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n4<|im_end|>',
  'Digits split one by one: 1234567890 and 3.14159 and ١٢٣',
]);
