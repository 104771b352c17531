"""Writes the sample corpus of this project (invented sentences): sample_train.iob
and sample_dev.iob. The dev set uses other names than the training set, so its
scores show how the model does on entities it has never seen.

    python assets/make_sample.py
"""
import random
from pathlib import Path

HERE = Path(__file__).parent
rng = random.Random(13)
PER = [["Mira", "Kowalczyk"], ["Tomas", "Eberhardt"], ["Aiko", "Tanabe"], ["Lucia", "Ferreira"], ["Jonas", "Lindqvist"],
       ["Priya", "Raman"], ["Oskar", "Vinter"], ["Nadia", "Haddad"], ["Felix", "Ortmann"], ["Grace", "Okonkwo"], ["Ruben"], ["Ilse"]]
ORG = [["Norvale", "Systems"], ["the", "Baltic", "Shipping", "Board"], ["Quillstone", "Bank"], ["Harbor", "City", "Council"],
       ["Vantor", "Motors"], ["the", "Alpine", "Rail", "Union"], ["Lumeris"], ["Corvid", "Labs"]]
LOC = [["Tallinn"], ["Porto"], ["Osaka"], ["Lake", "Geneva"], ["Cape", "Town"], ["Rotterdam"], ["Valparaiso"], ["the", "Danube"], ["Quebec"], ["Nairobi"]]
MISC = [["Danish"], ["Portuguese"], ["Winter", "Games"], ["Japanese"], ["Euro", "Cup"], ["Kenyan"], ["Nordic"]]
DEV = {
    "PER": [["Elena", "Marchetti"], ["Samuel", "Adeyemi"], ["Hana", "Novak"], ["Victor", "Almeida"], ["Yusuf"]],
    "ORG": [["Brightwater", "Energy"], ["the", "Coastal", "Freight", "Union"], ["Meridian", "Insurance"], ["Talvik"]],
    "LOC": [["Gdansk"], ["Lyon"], ["Lake", "Taupo"], ["Montevideo"], ["the", "Rhine"], ["Bergen"]],
    "MISC": [["Finnish"], ["Chilean"], ["Summer", "Regatta"], ["Baltic", "Cup"]],
}
NAMES = {"PER": PER, "ORG": ORG, "LOC": LOC, "MISC": MISC}
T = [
    "{PER} joined {ORG} in {LOC} last spring .",
    "{ORG} said on Monday that it would open an office in {LOC} .",
    "{PER} , a {MISC} engineer , lives near {LOC} .",
    "Shares of {ORG} rose 3 percent after {PER} spoke .",
    "The {MISC} team beat the hosts 2-1 in {LOC} .",
    "{PER} met {PER} at the {MISC} festival .",
    "Rain delayed trains between {LOC} and {LOC} on Friday .",
    "{ORG} hired {PER} as its new chief executive .",
    "Fans travelled from {LOC} to watch the {MISC} final .",
    "A spokesman for {ORG} declined to comment .",
    "{PER} won the {MISC} title for the second time .",
    "Prices in {LOC} fell for a third month , {ORG} reported .",
]
def sent(names):
    words, tags = [], []
    for tok in rng.choice(T).split():
        if tok.startswith("{") and tok.endswith("}"):
            label = tok[1:-1]
            ent = rng.choice(names[label])
            drop_the = ent[0] == "the"
            if drop_the:
                words.append("the"); tags.append("O"); ent = ent[1:]
            for i, w in enumerate(ent):
                words.append(w); tags.append(("B-" if i == 0 else "I-") + label)
        else:
            words.append(tok); tags.append("O")
    return words, tags
def write(path, n, names, docs_every=8):
    with open(HERE / path, "w") as f:
        for i in range(n):
            if i % docs_every == 0:
                f.write("-DOCSTART- O\n\n")
            w, t = sent(names)
            f.write("".join(f"{a} {b}\n" for a, b in zip(w, t)) + "\n")
if __name__ == "__main__":
    write("sample_train.iob", 240, NAMES)
    write("sample_dev.iob", 60, DEV)
