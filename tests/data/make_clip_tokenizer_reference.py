"""Regenerate ``clip_tokenizer_reference.json``: captions, the ids OpenAI's reference tokenizer gives
them, and the subset of CLIP's BPE merge rules those captions exercise (with their ranks).

Run with a checkout of github.com/openai/CLIP (``clip/simple_tokenizer.py`` and its
``bpe_simple_vocab_16e6.txt.gz``; it needs ``ftfy`` and ``regex``)::

    python tests/data/make_clip_tokenizer_reference.py /path/to/CLIP/clip

Nothing of the reference is copied into salrt: its tokenizer runs here, in its own checkout.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

CONTEXT = 77


def captions() -> list[str]:
    """>= 200 captions: ASCII, Unicode digits and symbols, full-width text, accents, emoji, scripts,
    mojibake and HTML entities (ftfy / unescape), whitespace, contractions, literal special tokens,
    and captions longer than the context."""
    base = [
        "a man is talking to a woman in a kitchen",
        "Two dogs run across the field while a child laughs.",
        "A guitarist plays on stage; the crowd cheers!!!",
        "close-up of a speaker's face, he's explaining something",
        "people walking on a busy street in New York City at night",
        "a red car drives past a bus stop",
        "THE NEWS ANCHOR READS THE HEADLINES",
        "an orchestra performs Beethoven's 9th symphony",
        "a woman sings into a microphone (live)",
        "kids playing football in the rain",
    ]
    unicode_digits = [
        "x² + y² = r²",
        "H₂O boils at 100°C",
        "½ cup of sugar and ¾ cup of milk",
        "chapter Ⅻ begins",
        "the year ٢٠٢٤ in Arabic-Indic digits",
        "page ५ of १० in Devanagari",
        "room ３０２ on floor ３",
        "score: 3–2 after 90′",
        "pi ≈ 3.14159",
        "10⁻³ seconds",
        "①②③ step by step",
        "€5, £3 and ¥100",
        "the ratio is 1:1000000",
        "temperature −5 °C",
        "version 2.0.1-beta",
        "call 555-0100 now",
        "a 4K HDR video at 60fps",
        "MP3 → AAC conversion",
        "50% off!",
        "#1 hit single of 1999",
    ]
    fullwidth = [
        "ＡＢＣ ｎｅｗｓ ｌｉｖｅ",
        "ｈｅｌｌｏ　ｗｏｒｌｄ",
        "Ｔｏｋｙｏ　ｔｏｗｅｒ　ａｔ　ｎｉｇｈｔ",
        "ｆｕｌｌ－ｗｉｄｔｈ　ｐｕｎｃｔｕａｔｉｏｎ！",
        "ｔｈｅ　ｃａｔ（ｌｅｆｔ）ａｎｄ　ｔｈｅ　ｄｏｇ",
        "ｍｉｘｅｄ width text",
        "ＮＨＫ ニュース",
        "半角ｶﾀｶﾅ text",
    ]
    accents = [
        "café au lait on a terrace",
        "a naïve façade in Zürich",
        "São Paulo's avenida Paulista",
        "Ångström and Œuvre",
        "jalapeño piñata fiesta",
        "Dvořák's New World symphony",
        "crème brûlée for dessert",
        "Łódź railway station",
        "e\u0301 combining accent on e",
        "Ｃａｆé ｄｅ Ｆｌｏｒｅ",
        "İstanbul and ıstanbul",
        "straße in München",
    ]
    emoji = [
        "a happy face 🙂",
        "family 👨‍👩‍👧 at the beach",
        "flag 🇫🇷 waving",
        "thumbs up 👍🏽",
        "🎸🎤🥁 band practice",
        "fire 🔥🔥🔥",
        "a cat 🐈 on a sofa",
        "♥ love ♥",
        "✔ done ✘ failed",
        "rainbow 🏳️‍🌈 parade",
    ]
    scripts = [
        "一个男人在厨房里说话",
        "猫がソファの上で寝ている",
        "고양이가 소파에서 자고 있다",
        "мужчина говорит с женщиной",
        "ο άνθρωπος μιλάει",
        "رجل يتحدث مع امرأة",
        "איש מדבר עם אישה",
        "एक आदमी बात कर रहा है",
        "ชายคนหนึ่งกำลังพูด",
        "mixed 中文 and English words",
    ]
    repair = [
        "cafÃ© in the old town",
        "donâ€™t stop the music",
        "the â€œbestâ€\x9d show",
        "Ã¼ber cool",
        "&amp; then he said &quot;hi&quot;",
        "a &lt;b&gt;bold&lt;/b&gt; move",
        "&amp;amp; double escaped",
        "fish &#38; chips",
        "Tom&#8217;s house",
        "&nbsp;leading entity",
    ]
    spacing = [
        "  leading and trailing spaces  ",
        "tabs\tand\nnewlines\r\nhere",
        "non\u00a0breaking\u00a0space",
        "zero\u200bwidth\u200bspace",
        "em\u2003space and thin\u2009space",
        "multiple     spaces    inside",
        "\u3000ideographic space\u3000",
        "line\u2028separator",
    ]
    contractions = [
        "don't you dare",
        "IT'S A TRAP",
        "we'll see, they've gone, I'm here, she'd go, you're right",
        "rock 'n' roll",
        "the dogs' bowls",
        "o'clock",
        "'quoted'",
        "can't won't shouldn't",
    ]
    special = [
        "<|startoftext|> inside text",
        "ends with <|endoftext|>",
        "<|endoftext|><|endoftext|>",
        "<|STARTOFTEXT|> upper",
        "almost <|endof text|>",
    ]
    symbols = [
        "a_b_c snake_case",
        "hello...world",
        "wait!!!???",
        "C++ and C# code",
        "user@example.com",
        "https://example.com/path?q=1&r=2",
        "(parentheses) [brackets] {braces}",
        "a/b\\c|d",
        "~tilde~ `tick`",
        "$100 * 3 = $300",
        "«guillemets» and „quotes“",
        "—dash— –dash– -hyphen-",
        "…ellipsis…",
        "§ 12 ¶ 3",
        "∑ ∫ √ ∞ ≠ ≤ ≥",
        "→ ← ↑ ↓",
        "★☆★",
        "™ ® ©",
        "°′″",
        "·•●",
    ]
    out = base + unicode_digits + fullwidth + accents + emoji + scripts + repair + spacing + contractions
    out += special + symbols
    words = "the a man woman dog cat runs jumps quickly over lazy fox bright red blue car street music".split()
    rng = random.Random(0)
    long = [" ".join(rng.choice(words) for _ in range(n)) for n in (60, 80, 120, 300)]
    long += ["🙂" * 100, "x² " * 90, "ｗｉｄｅ " * 70, "supercalifragilisticexpialidocious " * 20]
    out += long
    extra_pool = unicode_digits + accents + emoji + symbols + scripts + fullwidth
    while len(out) < 220:  # mixtures of the categories above
        out.append(" ".join(rng.sample(base, 1) + rng.sample(extra_pool, 2)))
    out += ["", "   ", "a", "A", "123", "\u00e9", "🙂"]
    return out


def main(clip_dir: str) -> None:
    sys.path.insert(0, str(Path(clip_dir).resolve()))
    import simple_tokenizer as st  # the reference, from its own checkout

    tok = st.SimpleTokenizer(str(Path(clip_dir) / "bpe_simple_vocab_16e6.txt.gz"))
    caps = captions()
    ids = []
    for c in caps:  # clip.tokenize(..., truncate=True), without its torch tensor
        t = [tok.encoder["<|startoftext|>"], *tok.encode(c), tok.encoder["<|endoftext|>"]]
        if len(t) > CONTEXT:
            t = t[:CONTEXT]
            t[-1] = tok.encoder["<|endoftext|>"]
        ids.append(t)
    # the merge rules these captions reach: every ranked pair met at any step of any word's BPE
    used: dict[int, str] = {}
    for c in caps:
        text = st.whitespace_clean(st.basic_clean(c)).lower()
        for token in st.re.findall(tok.pat, text):
            if token in ("<|startoftext|>", "<|endoftext|>"):
                continue
            word = tuple("".join(tok.byte_encoder[b] for b in token.encode("utf-8")))
            word = word[:-1] + (word[-1] + "</w>",)
            while len(word) > 1:
                pairs = set(zip(word, word[1:]))
                for p in pairs:
                    if p in tok.bpe_ranks:
                        used[tok.bpe_ranks[p]] = " ".join(p)
                best = min(pairs, key=lambda p: tok.bpe_ranks.get(p, float("inf")))
                if best not in tok.bpe_ranks:
                    break
                merged, i = [], 0
                while i < len(word):
                    if i < len(word) - 1 and (word[i], word[i + 1]) == best:
                        merged.append(word[i] + word[i + 1])
                        i += 2
                    else:
                        merged.append(word[i])
                        i += 1
                word = tuple(merged)
    out = Path(__file__).with_name("clip_tokenizer_reference.json")
    data = {
        "about": "captions, ids from OpenAI CLIP's simple_tokenizer (tokenize, truncate=True, context 77), and "
        "the BPE merge rules (rank -> pair) of bpe_simple_vocab_16e6.txt.gz that these captions use. "
        "Made by make_clip_tokenizer_reference.py.",
        "context": CONTEXT,
        "merges_total": len(tok.bpe_ranks),
        "merges": {str(k): used[k] for k in sorted(used)},
        "captions": caps,
        "ids": ids,
    }
    out.write_text(json.dumps(data, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {out}: {len(caps)} captions, {len(used)} merge rules")


if __name__ == "__main__":
    main(sys.argv[1])
