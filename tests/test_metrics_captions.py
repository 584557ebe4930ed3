"""pytest_lvlmbench.metrics.captions: hand-derived worked examples, pycocoevalcap as an oracle, and the
PTB tokenizer against the real Stanford PTBTokenizer jar shipped in pycocoevalcap (when Java is there)."""

from __future__ import annotations

import importlib.util
import math
import os
import random
import shutil
import subprocess

import numpy as np
import pytest

from pytest_lvlmbench.metrics import captions
from pytest_lvlmbench.metrics.captions import (
    MetricUnavailable,
    bleu,
    bleu_statistics,
    caption_statistics,
    cider_d,
    cider_d_scores,
    meteor_scores,
    ptb_tokenize,
    rouge_l,
    rouge_l_scores,
)
from pytest_lvlmbench.metrics.registry import METRICS

# ----------------------------------------------------------------------------- corpora

# Captions that exercise the jar's tokenization: clitics, quotes, brackets, numbers, abbreviations, acronyms,
# URLs, entities, dashes, ellipses, smileys, non-ASCII letters, emoji, soft hyphens, odd spaces.
TRICKY = [
    'A man riding a wave on top of a surfboard.',
    "A man (in a hat) doesn't like it.",
    'He said "hello" to the dog\'s owner.',
    'The U.S. flag, etc. Nice.',
    "It's 3.5 inches... 1,000 people",
    'A well-known dog -- and a cat - running.',
    "Don't can't won't I'm you're they'll we've she'd",
    "gonna cannot 'twas 'tis wanna gotta lemme gimme",
    ':) smile ;-) :-( :D :P =]',
    '2 1/2 cups and \xbd of it, \xbc and \xbe and \u2153',
    'e-mail me at foo@bar.com or www.google.com or http://example.org/a/b?c=d.',
    '\xa1Hola! \xbfQu\xe9 tal?',
    '',
    '   ',
    '...',
    "A man's hat.",
    "The dogs' bowls are empty.",
    'fig. 3 shows No. 5 and ca. 1900',
    "Mr. Smith and Dr. Jones met Mrs. Brown at St. Mary's.",
    'It was 10:30 a.m. on Jan. 5th.',
    "A sign reads 'STOP' in red.",
    'A sign that says \u201cno parking\u201d and \u2018keep out\u2019.',
    'It\u2019s a dog\u2019s life, isn\u2019t it?',
    'A cat -- or a dog -- sits; then it runs: fast!',
    'Wait... what?! Really!!',
    'A group of people standing around a table with food on it ....',
    'Two zebras grazing in a field . ',
    'A man holding a tennis racquet on a tennis court',
    'a kitchen with a stove, a sink , and a refrigerator',
    'There are 3 dogs and 12,500 sheep in the 1990s.',
    'A plate of food with broccoli & rice.',
    'AT&T and S&P-500 and R&D',
    'A $5 bill, 50% off, #1 fan, US$10 and \u20ac20 and \xa330 and 5\xa2',
    'A 7-Eleven store on 5th Ave.',
    "The year '90s and '70s fashion",
    "Rock 'n' roll and rock'n'roll",
    "O'Neil and O'Brien and d'Artagnan",
    "ma'am, y'all, o'clock, c'mon",
    "She said: 'I can't go.'",
    "He's gotta go, 'cause it's late.",
    'A photo (black-and-white) of a [red] {blue} car.',
    'A <b>bold</b> dog & a cat',
    'a 1-year-old child with a 2x4 board',
    'A 12-inch pizza and a 3/4-inch pipe',
    'Call 555-1234 or (650) 555-1212 now',
    'The date 12/25/2014 and 1/1/99.',
    "A sign with 'No U-turn' on it",
    'Cars driving on I-95 at 60mph',
    'I.e. the cat, e.g. a dog, vs. a mouse',
    'A man in the U.K. and the U.S.A. and U.N.',
    'The letter A. The letter B.',
    'Hello world.Goodbye world.',
    'A dog.A cat!A bird?',
    '3 p.m. and 4 P.M.',
    'The Ph.D. student and the M.D.',
    'An email: john.doe@example.co.uk.',
    'See https://www.example.com/path_(x).html for details.',
    'A man jumping in the air on a skateboard!!!',
    'A woman...sitting on a bench',
    'a -- b --- c ---- d ----- e',
    'x - y \u2013 z \u2014 w',
    'Tab\tseparated\tcaption',
    'Non\xa0breaking\xa0space here',
    'A caf\xe9 in S\xe3o Paulo, na\xefve r\xe9sum\xe9',
    '\xc9COLE \xc0 PARIS',
    'Stra\xdfe and \u0130stanbul',
    'An emoji \U0001f600 in a caption \U0001f44d!',
    'A snowman \u2603 and a heart \u2665 and a star \u2605',
    'Math: 2+2=4 and 3*3 and 10^2 and 5~6',
    'a/b c\\d e|f',
    'A soft\xadhyphen word',
    'zero\u200bwidth',
    'BOM\ufeffinside',
    '\xabquoted\xbb and \u2039single\u203a',
    'A "quoted" word and "another one"',
    'He said "go"',
    '"',
    "''",
    "``hello''",
    "A dog with its owner 's hat",
    "We're here; you're there; they're everywhere",
    "I'd've done it",
    "Can't won't shan't ain't",
    'cannot Cannot CANNOT',
    "DON'T SHOUT",
    "Isn't it? Aren't they? Wasn't he?",
    'A number -5 and +3 and 1.5e3',
    'Numbers: 1.000.000 and 3,14 and 1:2:3',
    'Version 2.0.1 of the app',
    'c++ and c# and f# and C++',
    'A file named report.pdf and photo.jpg.',
    'The website google.com and yahoo.net',
    'Hashtag #love and @user mention',
    'A tree. . . and a bush',
    'ellipsis\u2026here',
    'Pty. Ltd. and Co. Ltd.',
    'Inc. Corp. Ltd. Bros. Jr. Sr.',
    'Jan. Feb. Mar. Sept. Oct.',
    'Calif. and Mass. and Wash.',
    'etc.',
    'and so on, etc. and so forth',
    'etc. The end',
    'A person wearing a t-shirt and a baseball cap',
    'A x-ray of a hand',
    'A hot-dog stand next to a fire-hydrant.',
    'anti-war and pro-choice and non-U.S. sales',
    'A U.S.-U.K. deal',
    '-LRB- literal -RRB-',
    '&amp; &quot; &apos; &lt; &gt; &nbsp; &mdash; &#39;',
    'caf&eacute; and na&iuml;ve',
    'A sign <that says> stop',
    '<< and >> arrows',
    'An arrow -> pointing',
    'a*b and ** stars',
    'under_score and __init__',
    'The 1st, 2nd, 3rd and 4th places',
    'A 100m race and 5km run and 3.5kg bag',
    'Temperatures of 30\xb0C and 86\xb0F',
    'Copyright \xa9 2014 and \xae trademark \u2122',
    'A \xd7 B \xf7 C',
    '\u4e00\u4e2a\u7537\u4eba caption in Chinese',
    '\u041c\u0443\u0436\u0447\u0438\u043d\u0430 in Russian',
    '\u0627\u0644\u0631\u062c\u0644 in Arabic',
    'Greek \u0391\u0398\u0397\u039d\u0391 \u039b\u039f\u0393\u039f\u03a3',
    'Superscripts x\xb2 and H\u2082O',
    'A dog\u2019ll run and it\u2019d be fine',
    'A dog`s toy',
    "the 'best' of times",
    "' leading quote",
    "trailing quote '",
    "'s alone",
    "A man is n't here",
    'Mr.Smith and Dr.Who',
    'LOL!!! OMG??? WTF?!',
    'A ( spaced ) paren',
    'Hi there :)',
    'ok :)',
    'a (b) c',
    ':(',
    'x:)y',
    'The end.',
    'The end!',
    'THE END.',
    'Two dogs play in the grass .',
    'A  double  spaced   caption',
    'a man, a plan, a canal: panama',
    'one;two;three',
    'item 1) and item 2)',
    '(parenthesized caption)',
    'A sign reading "5 $"',
    'The S.S. Minnow',
    'A.B.C. news',
    'a.k.a. the boss',
    'Apt. 4B',
    'Mt. Everest and Ft. Worth',
    'Gov. Brown and Sen. Smith and Rep. Jones',
    'No. 10 Downing St.',
    'A 3-D movie and 4-H club',
    'Dogs vs. cats',
    "The 60's and the '60s",
    "rock 'n roll",
    "don'ts and dos",
    'Yo-yo ma',
    "it 's",
    'can not',
    "I 'm here",
]

# One example per tokenizer rule: (caption, its tokens joined by spaces), each checked against the jar.
TOKENIZER_EXAMPLES = [
    ("A Man Riding A Wave.", "a man riding a wave"),
    ("a kitchen with a stove, a sink; and a fridge: nice!", "a kitchen with a stove a sink and a fridge nice"),
    ("Wait... what?! Really!! ok?", "wait what ?! really !! ok"),
    ("Mr. Smith met Dr. Jones at St. Mary's in the U.S. at 10 a.m. on Jan. 5th, etc.",
     "mr. smith met dr. jones at st. mary 's in the u.s. at 10 a.m. on jan. 5th etc."),
    ("Apt. 4B, No. 5 and no. way; fig. 3", "apt 4b no. 5 and no way fig. 3"),
    ("plan B. The end. Vitamin C. Dogs like it.", "plan b the end vitamin c. dogs like it"),
    ("Don't can't won't I'm you're they'll we've she'd", "do n't ca n't wo n't i 'm you 're they 'll we 've she 'd"),
    ("cannot gonna wanna gotta 'twas", "can not gon na wan na got ta 't was"),
    ("the dog's bone and the dogs' bowls", "the dog 's bone and the dogs bowls"),
    ("It\u2019s a dog\u2019s life, isn\u2019t it?", "it 's a dog 's life is n't it"),
    ("o'clock ma'am O'Neil y'all rock 'n' roll in the '90s", "o'clock ma'am o'neil y' all rock 'n' roll in the '90s"),
    ("He said \"hello\", 'bye' and \u201cok\u201d \u2018no\u2019", "he said hello bye and ok no"),
    ("A photo (black-and-white) of a [red] {blue} car.",
     "a photo -lrb- black-and-white -rrb- of a -lsb- red -rsb- -lcb- blue -rcb- car"),
    ("a well-known dog -- and a cat - running \u2014 fast \u2013 here ----- x",
     "a well-known dog and a cat running fast here ----- x"),
    ("1,000 people, 3.5 inches, 1.000.000 and -5 and +3", "1,000 people 3.5 inches 1.000.000 and -5 and +3"),
    ("2 1/2 cups, \u00bd cup and a 3/4-inch pipe", "2\u00a01/2 cups 1/2 cup and a 3/4-inch pipe"),
    ("50% off a $5 bill, US$10, \u20ac20, \u00a330, 5\u00a2", "50 % off a $ 5 bill us$ 10 $ 20 # 30 5 cents"),
    ("at 3:30 on 12/25/2014", "at 3:30 on 12/25/2014"),
    ("a tree... a bush . . . a rock\u2026 end", "a tree a bush a rock end"),
    ("and/or his/her a/b/c/d", "and/or his/her a/b/c / d"),
    ("rock & roll AT&T R&D &amp; B&W", "rock & roll at&t r&d & b&w"),
    (":) smile ;-) :D", ":-rrb- smile ;--rrb- :d"),
    ("A caf\u00e9 in S\u00e3o Paulo, \u00c9COLE na\u00efve", "a caf\u00e9 in s\u00e3o paulo \u00e9cole na\u00efve"),
    ("An emoji \U0001F600 here \U0001F44D!", "an emoji here"),
    ("e-mail foo@bar.com or www.google.com or http://example.org/a?b=c.",
     "e-mail foo@bar.com or www.google.com or http://example.org/a?b=c"),
    ("A  double\tspaced\u00a0caption\nline", "a double spaced caption line"),
    ("A dog.A cat. It runs.", "a dog.a cat it runs"),
    ("", ""),
    ("   ", ""),
    ("... !", ""),
]

# Seeded COCO / LLaVA-style captions with the tokenizer's features mixed in: clitics, quotes, brackets,
# hyphens and dashes, numbers, money, abbreviations and initials, ellipses, slashes, symbols, emoticons,
# URLs, non-ASCII words, emoji, odd spacing and glued punctuation.
_DET = "a an the two three some several many one four a few his her their its this that".split()
_ADJ = ("red blue green white black large small old young little tall wooden empty busy crowded happy brown yellow "
        "orange pink dirty clean modern vintage colorful open closed wet snowy grassy sunny cloudy dark bright").split()
_NOUN = ("man woman dog cat child boy girl person people bus train car truck bike motorcycle table plate pizza "
         "sandwich kitchen sink bathroom toilet street sign room bed couch laptop phone clock tower building field "
         "zebra giraffe elephant horse sheep cow bird kite surfboard skateboard wave beach ocean umbrella bench "
         "tree window door fence road sidewalk player bat ball frisbee cake donut banana broccoli oven fridge").split()
_VERB = ("riding sitting standing holding eating looking walking playing flying parked laying running jumping "
         "watching carrying wearing cutting throwing catching waiting driving crossing sleeping").split()
_PREP = "on in with near next to of at under behind above beside by through across along around".split()
_END = [".", ".", ".", "", "", " .", "!", "?", "...", " ...", "?!", "!!", "..", " . ", ". "]
_SENT_START = "The A It This There He She They In An Two One Some When".split()
_FEATURES = [
    "don't", "doesn't", "isn't", "aren't", "can't", "won't", "it's", "It's", "that's", "there's", "he's", "she's",
    "they're", "we're", "you're", "I'm", "I've", "we've", "they'll", "I'll", "she'd", "I'd", "wouldn't", "couldn't",
    "cannot", "Cannot", "gonna", "wanna", "gotta", "man's", "woman's", "dog's", "people's", "dogs'", "James'",
    "children's", "it’s", "don’t", "dog’s", "DON'T", "IT'S", "o'clock", "ma'am", "y'all", "rock 'n' roll", "'90s",
    "'em", "'cause", "O'Neil", "McDonald's", "Macy's", "let's", "Let's", "ain't", "shouldn't", "\"STOP\"",
    "\"Welcome\"", "'open'", "“Exit”", "‘caution’", "\"no parking\"", "``hi''", "'s", "' s", "\"", "'",
    "a sign that says \"ONE WAY\"", "the word 'love'", "(left)", "(a cat)", "[sic]", "{x}", "( blurry )", "(", ")",
    "well-known", "t-shirt", "T-shirt", "x-ray", "hot-dog", "two-story", "black-and-white", "3-year-old",
    "double-decker", "self-driving", "--", " -- ", " - ", "-", "—", " – ", "---", "e-mail", "U-turn", "7-Eleven",
    "cross-country", "re-enter", "co-op", "Coca-Cola", "3", "12", "1,000", "12,500", "3.5", "0.5", "10:30", "3:30",
    "1/2", "3/4", "2 1/2", "50%", "100 %", "$5", "$3.99", "$ 20", "#1", "#5", "No. 5", "no. 10", "5th", "21st",
    "1990s", "2014", "12/25/2014", "1-2", "-5", "+3", "20-30", "5.", "10.", "100m", "2x4", "4K", "3D", "3-D",
    "1.5kg", "10am", "8pm", "24/7", "9/11", "€20", "£30", "5¢", "½", "¼", "fig. 3", "ca. 1900", "Route 66", "I-95",
    "555-1234", "Mr.", "Mrs.", "Dr.", "St.", "Ave.", "U.S.", "u.s.", "U.S.A.", "U.K.", "a.m.", "p.m.", "A.M.",
    "P.M.", "etc.", "etc", "vs.", "vs", "e.g.", "i.e.", "Inc.", "Co.", "Jan.", "Sept.", "Mt.", "Jr.", "Calif.",
    "Mass.", "J. K.", "J.K.", "D.C.", "Washington D.C.", "N.Y.", "Ph.D.", "Apt.", "approx.", "min.", "Blvd.", "Rd.",
    "Ft.", "the letter A.", "Plan B.", "vitamin C.", "grade A.", "Mr. Smith", "Dr. Who", "St. Louis", "10 a.m.",
    "...", "…", ". . .", "....", "?", "!", "?!", "!!!", "??", "and/or", "his/her", "w/", "on/off", "&", "AT&T",
    "R&D", "B&W", "H&M", "rock & roll", "+", "=", "*", "**", "#hashtag", "@user", "100°", "©", "™", "×", "→", "~",
    "|", "/", "\\", "<", ">", "_", ":)", ":(", ";)", ":-)", ":D", ":P", "café", "Café", "naïve", "São Paulo",
    "Zürich", "piñata", "crème brûlée", "jalapeño", "résumé", "Ångström", "ÉCOLE", "Straße", "Москва", "東京", "niño",
    "façade", "coöperate", "www.google.com", "google.com", "http://example.com", "info@example.com", "photo.jpg",
    "IMG_1234.JPG", "\U0001f600", "\U0001f44d", "❤", "☺", "a 6'2\" man", "5 ft. tall", "8 oz. cup", "approx. 3 feet",
    "No.1 fan", "1st. place", "Figure 1. A dog", "Step 2: cut", "ratio 2:1 and 16:9", "1080p video", "3-4 dogs",
    "3–4 dogs", "10-15% off", "~5 cats", "≈ 5", "5°F", "a 5' pole", "x2 speed", "2x zoom", "w/o sugar", "b/c tired",
    "etc..", "e.t.c.", "smile :-)", "I <3 NY", "grade A+ work", "C- grade", "5* hotel", "rated 5/5", "10/10",
    "@ 5pm", "5pm-6pm", "9am–5pm", "1990-2000", "1990–2000", "$1.5M deal", "$1,000,000", "$5k", "5K run", "£5.99",
    "US$5", "€5,50", "50/50 chance", "1:30pm", "12:00 a.m.", "Jan 5, 2020", "2020-05-12", "v1.2 update", "iPhone 12",
    "COVID-19", "H2O and CO2", "Wi-Fi", "T-Rex", "X-Men", "e-bike", "pre-war", "mid-1990s", "mid-'90s",
    "rock-'n'-roll", "jack-o'-lantern", "ne'er", "nothin'", "'bout", "'round", "y'know", "ya'll", "they'd've",
    "A man.The dog", "A man .The dog", "in the U.S.A", "the U.S", "I.", "A.", "a man (left).", "dogs (2)",
    "[1] a dog", "\"Hi!\"", "\"Hi.\"", "'Hi.'", "(Hi.)", "he said, \"no.\"", "a dog?\"", "cats!)", "it's 5 o'clock.",
    "the 1990's", "the 90's", "the '90s.", "Mr. & Mrs. Smith", "Mr.& Mrs.", "St. Patrick's Day", "Dr. Seuss'",
    "Jones' car", "Chris's car", "boss's", "the Smiths' house", "'Twas", "'TIS", "Gonna", "WANNA", "CANNOT",
    "can't.", "won't!", "don't?", "It's.", "He'll,", "we'd;", "a.m..", "7 a.m.", "7a.m.", "7am.", "7 A.M. The",
    "e.g.,", "i.e.:", "etc.)", "(etc.)", "U.S.-based", "U.K.'s", "N.Y.C.", "NYC's", "Levi's", "Macy’s", "dogs’",
    "‘Hi’", "“Hi,” she said", "«Bonjour»", "„Hallo“", "... and", "and ...", "a..b", "a...b", "a....b", "a.....b",
    "a......b", "?!?!", "-a", "a-", "--a", "a--", "a---b", "a----b", "——", "—a—", "a—b", "a–b", "5–6", "5—6", "5-6",
    "-5°", "+5°", "5.5.", ".5", "0.5.", "5,", "5,000.", "1,000,000.00", "3.14159", "1.2.3.4", "192.168.0.1",
    "10:30:45", "10:30.", "#5.", "No. 5.", "no.5", "A No. 2 pencil", "Fig. 3", "fig.3", "ca.1900", "art. 5",
    "pp. 10", "op. 5", "prop. 8", "vol. 2", "ch. 3", "sec. 4", "p. 5", "pg. 5", "Mt Everest", "St Louis", "St.Louis",
    "5th Ave.", "5th Ave. The", "Co.,", "Inc.,", "Ltd.;", "Jr.'s", "Sr.", "Ph.D.s", "PhD", "M.D.", "B.A.", "M.A.",
    "Ms.", "Mrs", "Messrs.", "Sen.", "Gov.", "Rev.", "Capt.", "Sgt.", "Gen.", "Prof.", "Lt.", "Col.", "Adm.", "Hon.",
    "Pres.", "Feb.", "Mar.", "Apr.", "Jun.", "Jul.", "Aug.", "Sep.", "Oct.", "Nov.", "Dec.", "Mon.", "Tue.", "Wed.",
    "Thu.", "Fri.", "Sat.", "Sun.", "mon.", "v.", "Vs.", "VS.", "Nos. 1", "Figs. 2", "Bros.", "Inc", "Corp.", "Co",
    "Ltd", "Etc.", "ETC.", "e.g", "i.e", "a.k.a.", "aka", "R.I.P.", "RIP", "A.I.", "AI", "T.V.", "TV", "L.A.", "LA",
    "NY", "U.N.", "EU", "E.U.",
]


def generated_captions(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)

    def caption() -> str:
        if rng.random() < 0.004:
            return rng.choice(["", " ", "\t", "   "])
        words = []
        for _ in range(rng.choice([1, 1, 1, 2, 2, 3])):
            sent = [rng.choice(_DET)] + [rng.choice(_ADJ)] * (rng.random() < 0.5) + [rng.choice(_NOUN)]
            if rng.random() < 0.7:
                sent += [rng.choice(_VERB), rng.choice(_PREP), rng.choice(_DET), rng.choice(_NOUN)]
            for _ in range(rng.choice([0, 1, 1, 2, 3])):
                sent.insert(rng.randint(0, len(sent)), rng.choice(_FEATURES))
            if rng.random() < 0.15:
                sent.insert(rng.randint(1, len(sent)), ",")
            if rng.random() < 0.8:
                sent[0] = sent[0][:1].upper() + sent[0][1:]
            if rng.random() < 0.05:
                sent = [w.upper() for w in sent]
            words += sent
            words[-1] += rng.choice(_END)
            if rng.random() < 0.1:
                words.append(rng.choice(_SENT_START))
        out = ""
        for word in words:
            sep = rng.choice([" "] * 30 + ["  ", "\t", "   ", " \t "])
            if word in (",", ".", "!", "?") or rng.random() < 0.08:
                sep = "" if rng.random() < 0.7 else sep
            out += (sep if out else "") + word
        return out

    return [caption() for _ in range(count)]


# An oracle corpus: 8 images, 3-5 references each, with punctuation, clitics, an empty candidate,
# a repeated image and n-grams shared across images (so document frequencies matter).
ORACLE_CANDIDATES = [
    "A man riding a wave on top of a surfboard.",
    "a dog",
    "Two cats sleeping on a couch together",
    "",
    "A kitchen with a stove, a sink, and a fridge.",
    "The man's hat is red (very red).",
    "A man riding a wave.",
    "A plate of food: broccoli, rice & a fork... Yum!",
]
ORACLE_REFERENCES = [
    ["A surfer rides a large wave.", "A man on a surfboard riding a wave.", "Someone surfing in the ocean."],
    ["A dog runs in the grass.", "A brown dog playing outside.", "dog", "A puppy."],
    ["Two cats sleep on a sofa.", "A pair of cats napping on the couch.", "Cats asleep together on a couch.",
     "Two kittens on a couch", "cats"],
    ["A bowl of fruit.", "Fruit in a bowl on the table.", "Apples and oranges."],
    ["A kitchen with a stove and a sink.", "A small kitchen with appliances.",
     "Kitchen with a refrigerator, stove and sink.", "The kitchen isn't very big."],
    ["A man wearing a red hat.", "A red hat on a man's head.", "Man in a red cap.", "He's wearing a \"red\" hat."],
    ["A surfer rides a large wave.", "A man on a surfboard riding a wave.", "Someone surfing in the ocean."],
    ["A plate with broccoli and rice.", "Broccoli, rice and a fork on a plate.", "A dinner plate of food.",
     "Food on a plate (broccoli and rice)", "Rice & broccoli."],
]


def random_corpus(n_images: int, seed: int) -> tuple[list[str], list[list[str]]]:
    rng = random.Random(seed)
    vocab = ("a the man woman dog cat two on in with of is riding sitting red blue big small street table "
             "plate food grass wave surfboard bus train kitchen sink it's don't dog's , . ! ( ) - ...").split()

    def sentence() -> str:
        return " ".join(rng.choice(vocab) for _ in range(rng.randint(0 if rng.random() < 0.05 else 2, 12)))

    return ([sentence() for _ in range(n_images)],
            [[sentence() for _ in range(rng.randint(3, 5))] for _ in range(n_images)])


def pycoco_scores(candidates, references) -> dict[str, float]:
    """pycocoevalcap's Bleu(4), Rouge, Cider fed our ptb_tokenize output joined by spaces."""
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge

    gts = {i: [" ".join(ptb_tokenize(r)) for r in refs] for i, refs in enumerate(references)}
    res = {i: [" ".join(ptb_tokenize(c))] for i, c in enumerate(candidates)}
    bleus, _ = Bleu(4).compute_score(gts, res, verbose=0)
    rouge, rouge_each = Rouge().compute_score(gts, res)
    cider, cider_each = Cider().compute_score(gts, res)
    out = {f"bleu_{k}": float(bleus[k - 1]) for k in (1, 2, 3, 4)}
    out.update(rouge_l=float(rouge), cider_d=float(cider))
    out["rouge_l_each"], out["cider_d_each"] = list(rouge_each), list(cider_each)
    return out


# ----------------------------------------------------------------------------- tokenizer, no Java


@pytest.mark.parametrize("text, tokens", TOKENIZER_EXAMPLES)
def test_ptb_tokenize_examples(text, tokens):
    assert ptb_tokenize(text) == (tokens.split(" ") if tokens else [])


def test_ptb_tokenize_returns_a_fresh_list():
    first = ptb_tokenize("a dog runs")
    first.append("x")
    assert ptb_tokenize("a dog runs") == ["a", "dog", "runs"]


@pytest.mark.parametrize("text, tokens", [
    ("the letter A.", "the letter a."),            # the jar gives "a" when the next caption starts with "The"
    ("smile :)", "smile :-rrb-"),                  # the jar gives "-rrb-" at the end of its file
    ("\xadwell-known", "well-known"),              # soft hyphens are removed (jar: "well known")
    ("d&apos; x", "d' x"),                         # entities glued to words (jar: "d&apos;")
    ("^_^", "^ _ ^"),                              # only ":)"-style emoticons (jar: "^_^")
    ("a\rb", "a b"),                               # \r is a space (the jar starts a new line)
])
def test_ptb_tokenize_documented_differences(text, tokens):
    """What ptb_tokenize's docstring lists as differing from the jar, pinned (ours, not the jar's)."""
    assert ptb_tokenize(text) == tokens.split(" ")


# ----------------------------------------------------------------------------- tokenizer vs the jar


def _ptb_jar() -> str:
    if shutil.which("java") is None:
        pytest.skip("no `java` on PATH: cannot run Stanford PTBTokenizer to compare")
    spec = importlib.util.find_spec("pycocoevalcap")
    if spec is None:
        pytest.skip("pycocoevalcap is not installed (it ships the PTBTokenizer jar)")
    jar = os.path.join(list(spec.submodule_search_locations)[0], "tokenizer", "stanford-corenlp-3.4.1.jar")
    if not os.path.isfile(jar):
        pytest.skip(f"PTBTokenizer jar missing: {jar}")
    return jar


def jar_tokenize(strings: list[str], tmp_path) -> list[str]:
    """pycocoevalcap's ptbtokenizer.py procedure (same java command, same PUNCTUATIONS filter, same
    line handling). Every caption is followed by a neutral line "zzz", so no caption's trailing
    context reaches into another test caption and the last one is not at end of file (the two
    documented cross-caption differences of ptb_tokenize)."""
    jar = _ptb_jar()
    path = tmp_path / "captions.txt"
    path.write_bytes("\n".join(line for s in strings for line in (s.replace("\n", " "), "zzz")).encode())
    out = subprocess.run(["java", "-cp", jar, "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines",
                          "-lowerCase", str(path)], capture_output=True, check=True, timeout=300).stdout.decode()
    lines = out.split("\n")
    punctuations = ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--",
                    "...", ";"]
    result = []
    for i in range(len(strings)):
        assert lines[2 * i + 1].rstrip() == "zzz", "jar output lines are misaligned"
        result.append(" ".join(w for w in lines[2 * i].rstrip().split(" ") if w not in punctuations))
    return result


def _jar_mismatches(strings, tmp_path):
    expected = jar_tokenize(strings, tmp_path)
    return [(s, e, " ".join(ptb_tokenize(s))) for s, e in zip(strings, expected) if " ".join(ptb_tokenize(s)) != e]


def test_ptb_tokenize_matches_the_jar_on_tricky_captions(tmp_path):
    strings = TRICKY + [e[0] for e in TOKENIZER_EXAMPLES]
    mismatches = _jar_mismatches(strings, tmp_path)
    assert not mismatches, f"{len(mismatches)} of {len(strings)} differ, e.g. {mismatches[:3]}"


def test_ptb_tokenize_matches_the_jar_on_generated_captions(tmp_path):
    strings = generated_captions(5000, seed=11)
    mismatches = _jar_mismatches(strings, tmp_path)
    assert len(mismatches) <= len(strings) // 1000, f"{len(mismatches)} of {len(strings)} differ: {mismatches[:3]}"


def test_ptb_tokenize_matches_the_jar_on_all_ascii_pairs(tmp_path):
    printable = [chr(c) for c in range(32, 127)] + ["\t"]
    strings = [f"a{x}{y}b {x}{y} 1{x}{y}2 A{x}{y}. {x}{y}s" for x in printable for y in printable]
    mismatches = _jar_mismatches(strings, tmp_path)
    assert not mismatches, f"{len(mismatches)} differ, e.g. {mismatches[:5]}"


# ----------------------------------------------------------------------------- BLEU, worked by hand


def test_bleu_identical_is_one():
    cands = ["a dog runs on the grass", "two cats sleep"]
    assert bleu(cands, [[c] for c in cands]) == pytest.approx(1.0, abs=1e-8)
    # case and punctuation go in the PTB tokenization
    assert bleu(["A Dog, runs."], [["a dog runs"]], n=3) == pytest.approx(1.0, abs=1e-8)


def test_bleu_brevity_penalty_hand_computed():
    # cand "the cat sat on the" (c=5) vs ref "the cat sat on the mat" (r=6):
    # precisions 5/5, 4/4, 3/3, 2/2 -> 1; BP = exp(1 - 6/5) = exp(-0.2)
    assert bleu(["the cat sat on the"], [["the cat sat on the mat"]]) == pytest.approx(math.exp(-0.2), rel=1e-6)
    # cand "cat sat on mat" (c=4) vs the same ref (r=6): 1-grams 4/4; 2-grams {cat sat, sat on,
    # on mat}: 2/3; 3-grams {cat sat on, sat on mat}: 1/2 -> BLEU-3 = (1 * 2/3 * 1/2)^(1/3) * exp(1 - 6/4)
    assert bleu(["cat sat on mat"], [["the cat sat on the mat"]], n=3) == pytest.approx(
        (1 / 3) ** (1 / 3) * math.exp(-0.5), rel=1e-6)


def test_bleu_smoothing_constants_of_bleu_scorer():
    # No 4-gram match (0 of 1): bleu_scorer.py multiplies (0 + 1e-15) / (1 + 1e-9) in, so BLEU-4 is
    # tiny but not 0: ((4/4) (2/3) (1/2) (1e-15/1)) ** (1/4) * exp(1 - 6/4).
    expected = ((4 + 1e-15) / (4 + 1e-9) * (2 + 1e-15) / (3 + 1e-9) * (1 + 1e-15) / (2 + 1e-9)
                * 1e-15 / (1 + 1e-9)) ** 0.25 * math.exp(1 - (6 + 1e-9) / (4 + 1e-15))
    assert bleu(["cat sat on mat"], [["the cat sat on the mat"]]) == pytest.approx(expected, rel=1e-12)
    assert 0 < expected < 1e-3


def test_bleu_closest_reference_tie_goes_to_shorter():
    # c = 5, refs of length 4 and 6 are equally close -> r = 4 -> no brevity penalty; clipping uses
    # the max count over refs ("the" x2 from the longer one).
    assert bleu(["the cat sat on the"], [["the cat sat on", "the cat sat on the mat"]]) == pytest.approx(1.0, abs=1e-8)
    # with refs of length 2 and 7 the closer (7, distance 2) wins -> BP = exp(1 - 7/5)
    refs = [["the cat", "the cat sat on the mat today"]]
    assert bleu(["the cat sat on the"], refs, n=1) == pytest.approx(math.exp(1 - 7 / 5), rel=1e-6)


def test_bleu_is_corpus_level():
    # all n-gram matches exact; c = 5 + 6 = 11, r = 6 + 6 = 12 -> BP = exp(1 - 12/11)
    # (the mean of sentence BLEUs would be (exp(-0.2) + 1) / 2 instead)
    cands = ["the cat sat on the", "a dog runs in the park"]
    refs = [["the cat sat on the mat"], ["a dog runs in the park"]]
    assert bleu(cands, refs) == pytest.approx(math.exp(1 - 12 / 11), rel=1e-6)


def test_bleu_clips_repeated_words():
    # "the the the" vs "the cat": clipped 1-gram precision 1/3, BP = 1 (c = 3 > r = 2)
    assert bleu(["the the the"], [["the cat"]], n=1) == pytest.approx(1 / 3, rel=1e-6)
    # clipping is by the max count in any ONE reference, not the sum over references
    assert bleu(["the the the"], [["the cat", "the dog"]], n=1) == pytest.approx(1 / 3, rel=1e-6)


def test_bleu_counts_clitics_as_tokens():
    # "doesn't" -> "does n't": 3 tokens vs 2 (BLEU-1 = 2/3 clipped, c = 3 > r = 2)
    assert bleu(["it doesn't"], [["it does"]], n=1) == pytest.approx(2 / 3, rel=1e-6)


# ----------------------------------------------------------------------------- ROUGE-L, worked by hand


def test_rouge_l_single_reference_hand_computed():
    # cand "a man riding a horse" (5), ref "a man is riding a brown horse" (7): LCS = 5
    # P = 5/5, R = 5/7, F = (1 + 1.2^2) P R / (R + 1.2^2 P)
    p, r = 1.0, 5 / 7
    expected = (1 + 1.44) * p * r / (r + 1.44 * p)
    assert rouge_l_scores(["a man riding a horse"], [["a man is riding a brown horse"]]) == [
        pytest.approx(expected, rel=1e-12)]


def test_rouge_l_lcs_is_a_subsequence_and_beta_is_1_2():
    # "a b c" vs "a x b y c": LCS 3 (not contiguous). P = 1, R = 3/5.
    p, r = 1.0, 3 / 5
    assert rouge_l(["a b c"], [["a x b y c"]]) == pytest.approx(2.44 * p * r / (r + 1.44 * p), rel=1e-12)
    # beta = 1.2 weighs recall: P = 1, R = 1/2 -> 1.22 / 1.94, not the F1 2/3
    assert rouge_l(["dog runs"], [["dog runs in park"]]) == pytest.approx(1.22 / 1.94, rel=1e-12)


def test_rouge_l_takes_max_precision_and_max_recall_separately():
    # cand "dog runs in park" (4 tokens)
    #   ref1 "dog runs": LCS 2 -> P 2/4, R 2/2
    #   ref2 "the dog runs fast in a big park": LCS 4 -> P 4/4, R 4/8
    # pycocoevalcap takes max P = 1 (ref2) and max R = 1 (ref1) -> F = 1, although alone ref1 gives
    # 2.44 * 0.5 * 1 / (1 + 1.44 * 0.5) = 1.22 / 1.72 and ref2 2.44 * 1 * 0.5 / (0.5 + 1.44) = 1.22 / 1.94.
    refs = [["dog runs", "the dog runs fast in a big park"]]
    assert rouge_l(["dog runs in park"], refs) == pytest.approx(1.0)
    assert rouge_l(["dog runs in park"], [refs[0][:1]]) == pytest.approx(1.22 / 1.72)
    assert rouge_l(["dog runs in park"], [refs[0][1:]]) == pytest.approx(1.22 / 1.94)


def test_rouge_l_is_mean_over_images_and_zero_without_overlap():
    scores = rouge_l_scores(["a dog", "zebra"], [["a dog"], ["a cat"]])
    assert scores == [pytest.approx(1.0), 0.0]
    assert rouge_l(["a dog", "zebra"], [["a dog"], ["a cat"]]) == pytest.approx(0.5)


# ----------------------------------------------------------------------------- CIDEr-D, worked by hand


def test_cider_identical_corpus_pattern():
    # identical candidate/reference: every order with a non-zero vector has cosine 1 and no length
    # penalty, so an image scores 10 * (#orders present) / 4
    caps = ["a dog runs on the grass", "a cat sleeps on a sofa", "two birds fly over the sea"]
    assert cider_d(caps, [[c] for c in caps]) == pytest.approx(10.0)
    # a 3-word caption has no 4-grams: 10 * 3/4 = 7.5; mean with a 10.0 image = 8.75
    caps = ["a dog runs on the grass", "cat sleeps now"]
    assert cider_d(caps, [[c] for c in caps]) == pytest.approx(8.75)


def test_cider_single_image_and_disjoint_candidates_score_zero():
    # one image: idf = log(1) - log(1) = 0 for every reference n-gram
    assert cider_d_scores(["a dog runs"], [["a dog runs"]]) == [0.0]
    # candidates sharing no n-gram with their references
    assert cider_d(["zebra grazes quietly", "purple rain"], [["dog runs fast"], ["cat sleeps"]]) == 0.0


def test_cider_two_image_hand_example():
    # Refs: A "dog runs fast", B "cat sleeps". N = 2, no n-gram is shared between the two images,
    # so every reference n-gram has df = 1 and weight L = log 2 - log 1 = log 2. Candidate n-grams
    # absent from all refs have df = 0 -> max(1, 0) = 1 -> weight L too.
    # Image A, cand "dog runs fast" (identical): orders 1-3 cosine 1, order 4 empty -> 0; bigram
    #   lengths 2 vs 2 -> penalty 1. score = 10 * 3 / 4 = 7.5
    # Image B, cand "cat eats": order 1: cand {cat: L, eats: L}, ref {cat: L, sleeps: L}:
    #   sum min(c, r) * r = L^2, / (sqrt2 L * sqrt2 L) = 1/2; orders 2-4 -> 0; lengths 1 vs 1.
    #   score = 10 * 0.5 / 4 = 1.25.  corpus = (7.5 + 1.25) / 2 = 4.375
    refs = [["dog runs fast"], ["cat sleeps"]]
    assert cider_d_scores(["dog runs fast", "cat eats"], refs) == [pytest.approx(7.5), pytest.approx(1.25)]
    assert cider_d(["dog runs fast", "cat eats"], refs) == pytest.approx(4.375)


def test_cider_length_penalty_counts_bigrams():
    # Same refs; image B cand "cat sleeps now" (3 words = 2 bigrams vs the ref's 1):
    #   order 1: dot 2 L^2 / (sqrt3 L * sqrt2 L) = 2/sqrt6; order 2: L^2 / (sqrt2 L * L) = 1/sqrt2
    #   penalty exp(-(2 - 1)^2 / (2 * 6^2)) = exp(-1/72)
    score_b = 10 * (2 / math.sqrt(6) + 1 / math.sqrt(2)) * math.exp(-1 / 72) / 4
    refs = [["dog runs fast"], ["cat sleeps"]]
    assert cider_d(["dog runs fast", "cat sleeps now"], refs) == pytest.approx((7.5 + score_b) / 2)


def test_cider_clips_candidate_counts():
    # A: ref "dog runs", cand "dog dog". Order 1: cand {dog: 2L}, ref {dog: L, runs: L}:
    #   clipped dot min(2L, L) * L = L^2, / (2L * sqrt2 L) = 1 / (2 sqrt2) (unclipped: 1/sqrt2).
    #   Order 2: {dog dog} vs {dog runs} -> 0. score = 10 / (2 sqrt2) / 4.  B identical: 10 * 2 / 4 = 5
    refs = [["dog runs"], ["cat sleeps"]]
    assert cider_d(["dog dog", "cat sleeps"], refs) == pytest.approx((10 / (2 * math.sqrt(2)) / 4 + 5) / 2)


def test_cider_averages_over_references_and_df_counts_images():
    # A has refs "dog runs fast" (identical to cand: 1+1+1+0) and "bird flies" (no overlap: 0)
    #   -> 10 * 3 / 4 / 2 = 3.75; B: "cat sleeps" identical -> 5.
    refs = [["dog runs fast", "bird flies"], ["cat sleeps"]]
    assert cider_d(["dog runs fast", "cat sleeps"], refs) == pytest.approx((3.75 + 5) / 2)
    # an n-gram in the references of every image has idf log 2 - log 2 = 0: "a" adds nothing
    refs = [["a dog"], ["a cat"]]
    # A: order 1 cand {a: 0, dog: L} vs ref {a: 0, dog: L} -> 1; order 2 {a dog: L} -> 1 -> 10 * 2/4
    assert cider_d_scores(["a dog", "a bird"], refs)[0] == pytest.approx(5.0)


# ----------------------------------------------------------------------------- pycocoevalcap as the oracle

METRIC_NAMES = ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l", "cider_d")


def assert_matches_pycocoevalcap(candidates, references):
    oracle = pycoco_scores(candidates, references)
    ours = caption_statistics(candidates, references)
    assert tuple(ours) == METRIC_NAMES
    for name in METRIC_NAMES:
        assert abs(ours[name].value() - oracle[name]) <= 1e-9, name
    assert np.max(np.abs(np.array(rouge_l_scores(candidates, references)) - oracle["rouge_l_each"])) <= 1e-9
    assert np.max(np.abs(np.array(cider_d_scores(candidates, references)) - oracle["cider_d_each"])) <= 1e-9
    for k in (1, 2, 3, 4):
        assert abs(bleu(candidates, references, n=k) - oracle[f"bleu_{k}"]) <= 1e-9
    assert abs(rouge_l(candidates, references) - oracle["rouge_l"]) <= 1e-9
    assert abs(cider_d(candidates, references) - oracle["cider_d"]) <= 1e-9


def test_matches_pycocoevalcap_on_a_fixed_corpus():
    assert_matches_pycocoevalcap(ORACLE_CANDIDATES, ORACLE_REFERENCES)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_pycocoevalcap_on_random_corpora(seed):
    assert_matches_pycocoevalcap(*random_corpus(40, seed))


def test_bootstrap_resample_equals_pycocoevalcap_on_the_resampled_corpus():
    weights = np.array([2, 0, 1, 3, 0, 1, 1, 2], float)
    drawn = [i for i, w in enumerate(weights) for _ in range(int(w))]
    oracle = pycoco_scores([ORACLE_CANDIDATES[i] for i in drawn], [ORACLE_REFERENCES[i] for i in drawn])
    stats = caption_statistics(ORACLE_CANDIDATES, ORACLE_REFERENCES)
    for name in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"):      # exact: corpus counts / per-image
        assert abs(stats[name].resampled(weights[None, :])[0] - oracle[name]) <= 1e-9, name
    assert abs(bleu_statistics(ORACLE_CANDIDATES, ORACLE_REFERENCES).resampled(weights[None, :])[0]
               - oracle["bleu_4"]) <= 1e-9
    # CIDEr-D (documented): the resample reweights the full-corpus per-image scores; pycocoevalcap on
    # the resampled corpus recomputes document frequencies, so the two differ.
    per_image = cider_d_scores(ORACLE_CANDIDATES, ORACLE_REFERENCES)
    resampled = stats["cider_d"].resampled(weights[None, :])[0]
    assert resampled == pytest.approx(np.average(per_image, weights=weights), abs=1e-12)
    assert abs(resampled - oracle["cider_d"]) > 1e-6


def test_caption_statistics_names_are_registered_scores():
    stats = caption_statistics(ORACLE_CANDIDATES[:2], ORACLE_REFERENCES[:2])
    assert set(stats) == set(METRIC_NAMES) <= set(METRICS)
    assert not any(s.binary for s in stats.values())
    # ROUGE-L scores all 0 or 1 are still a score, not an accuracy (no McNemar)
    assert not caption_statistics(["a dog", "zebra"], [["a dog"], ["a cat"]])["rouge_l"].binary


def test_module_exports():
    for name in captions.__all__:
        assert hasattr(captions, name), name
    assert {"bleu_statistics", "bleu", "cider_d_scores", "cider_d", "rouge_l_scores", "rouge_l",
            "caption_statistics", "ptb_tokenize", "meteor_scores", "MetricUnavailable"} <= set(captions.__all__)


# ----------------------------------------------------------------------------- degenerate inputs


def test_empty_corpus():
    stats = caption_statistics([], [])
    assert {name: s.value() for name, s in stats.items()} == dict.fromkeys(METRIC_NAMES, 0.0)
    assert stats["rouge_l"].undefined and stats["cider_d"].undefined
    assert bleu([], []) == 0.0 and rouge_l([], []) == 0.0 and cider_d([], []) == 0.0
    assert rouge_l_scores([], []) == [] and cider_d_scores([], []) == []


def test_empty_candidate_string():
    # no tokens: BLEU 0 (guess 0, penalty exp(1 - r/1e-15) = 0), ROUGE-L 0, CIDEr-D 0
    refs = [["a dog runs"], ["a cat sleeps"]]
    assert bleu([""], refs[:1]) == 0.0
    assert rouge_l_scores(["", "a cat sleeps"], refs)[0] == 0.0
    assert cider_d_scores(["", "a cat sleeps"], refs)[0] == 0.0
    # a caption of punctuation only is empty after tokenization
    assert caption_statistics(["...!", "a cat"], refs)["bleu_1"].value() == pytest.approx(
        caption_statistics(["", "a cat"], refs)["bleu_1"].value())
    # rouge.py splits on " ": an empty caption is one empty token, so it matches an empty reference
    assert rouge_l_scores([""], [[""]]) == [1.0]


def test_empty_or_mismatched_references_raise():
    with pytest.raises(ValueError, match="no reference"):
        caption_statistics(["a dog", "a cat"], [["a dog"], []])
    with pytest.raises(ValueError, match="no reference"):
        bleu(["a"], [[]])
    with pytest.raises(ValueError, match="candidates"):
        cider_d(["a"], [["a"], ["b"]])
    with pytest.raises(ValueError, match="list of reference"):
        rouge_l(["a dog"], ["a dog"])
    with pytest.raises(ValueError, match="1..4"):
        bleu_statistics(["a"], [["a"]], n=5)


def test_one_image_corpus_has_zero_cider_but_bleu_and_rouge():
    stats = caption_statistics(["a dog runs fast"], [["a dog runs fast", "a dog is running"]])
    assert stats["cider_d"].value() == 0.0
    assert stats["bleu_4"].value() == pytest.approx(1.0, abs=1e-8)
    assert stats["rouge_l"].value() == pytest.approx(1.0)


# ----------------------------------------------------------------------------- METEOR


def test_meteor_unavailable_without_java(monkeypatch):
    monkeypatch.setattr(captions.shutil, "which", lambda name: None)
    with pytest.raises(MetricUnavailable, match="no `java` on PATH"):
        meteor_scores(["a dog"], [["a dog"]])


def test_meteor_unavailable_without_pycocoevalcap(monkeypatch):
    monkeypatch.setattr(captions.shutil, "which", lambda name: "/usr/bin/java")
    monkeypatch.setattr(captions.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(MetricUnavailable, match="pycocoevalcap is not installed"):
        meteor_scores(["a dog"], [["a dog"]])
    assert issubclass(MetricUnavailable, RuntimeError)


def test_meteor_with_java():
    try:
        captions._meteor_jar()
    except MetricUnavailable as exc:
        pytest.skip(str(exc))
    scores = meteor_scores(["a man riding a wave on a surfboard", "zebra", "Two dogs play."],
                           [["a man riding a wave on a surfboard", "a surfer"], ["a cat on a sofa"],
                            ["Two dogs are playing.", "Dogs playing in a park."]])
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert scores[0] > 0.9 and scores[1] < 0.1 and 0.1 < scores[2] < scores[0]
