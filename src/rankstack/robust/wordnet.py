"""A small offline WordNet 3.0 reader (Debian's ``wordnet-base``, ``/usr/share/wordnet``).

Reads ``index.POS`` (lemma -> synset offsets) and ``data.POS`` (offset -> synset lemmas) lazily,
and the ``POS.exc`` morphological exception files (``mice -> mouse``), for synonym candidates of a
word. No ``lexnames`` file is needed. Lemmas with spaces (``_`` in WordNet) are left out of the
synonyms, since a substitution replaces one word by one word.
"""

from __future__ import annotations

import os
from pathlib import Path

from rankstack.errors import FormatError, MissingDependencyError

__all__ = ["WordNet", "DEFAULT_WORDNET"]

DEFAULT_WORDNET = Path(os.environ.get("RANKSTACK_WORDNET", "/usr/share/wordnet"))
_POS = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


class WordNet:
    def __init__(self, root: str | os.PathLike[str] = DEFAULT_WORDNET):
        self.root = Path(root)
        if not (self.root / "index.noun").is_file():
            raise MissingDependencyError(
                f"WordNet 3.0 not found at {self.root} (no index.noun): apt-get install wordnet-base")
        self._index: dict[str, dict[str, list[int]]] = {}
        self._exc: dict[str, dict[str, list[str]]] = {}
        self._data: dict[str, bytes] = {}
        self._cache: dict[tuple[str, str | None], list[str]] = {}

    def _load_index(self, pos: str) -> dict[str, list[int]]:
        if pos not in self._index:
            path = self.root / f"index.{_POS[pos]}"
            table: dict[str, list[int]] = {}
            with open(path, encoding="utf-8") as f:
                for no, line in enumerate(f, start=1):
                    if line.startswith("  "):  # licence header
                        continue
                    parts = line.split()
                    try:
                        n_syn, n_ptr = int(parts[2]), int(parts[3])
                        offs = parts[6 + n_ptr: 6 + n_ptr + n_syn]
                        table[parts[0]] = [int(o) for o in offs]
                    except (IndexError, ValueError):
                        raise FormatError(f"{path}:{no}: not a WordNet index line") from None
            self._index[pos] = table
            exc: dict[str, list[str]] = {}
            epath = self.root / f"{_POS[pos]}.exc"
            if epath.is_file():
                with open(epath, encoding="utf-8") as f:
                    for line in f:
                        p = line.split()
                        if len(p) >= 2:
                            exc[p[0]] = p[1:]
            self._exc[pos] = exc
        return self._index[pos]

    def _synset(self, pos: str, offset: int) -> list[str]:
        if pos not in self._data:
            self._data[pos] = (self.root / f"data.{_POS[pos]}").read_bytes()
        data = self._data[pos]
        end = data.index(b"\n", offset)
        parts = data[offset:end].decode("utf-8").split()
        if not parts or int(parts[0]) != offset:
            raise FormatError(f"{self.root / ('data.' + _POS[pos])}: no synset at byte offset {offset}")
        n = int(parts[3], 16)
        words = parts[4: 4 + 2 * n: 2]
        return [w.split("(")[0].lower() for w in words]  # adjective markers: good(a)

    def lemmas(self, word: str, pos: str) -> list[str]:
        """Base forms of ``word`` as ``pos`` (``n v a r``): the exceptions, then the word itself,
        then regular noun/verb endings (WordNet's morphy, minimally)."""
        idx = self._load_index(pos)
        w = word.lower()
        cands = list(self._exc[pos].get(w, [])) + [w]
        if pos == "n":
            cands += [w[:-3] + "y"] if w.endswith("ies") else []
            cands += [w[:-2]] if w.endswith(("ses", "xes", "zes", "ches", "shes")) else []
            cands += [w[:-1]] if w.endswith("s") and not w.endswith("ss") else []
        elif pos == "v":
            cands += [w[:-1]] if w.endswith("s") else []
            cands += [w[:-2], w[:-1]] if w.endswith("ed") else []
            cands += [w[:-3], w[:-3] + "e"] if w.endswith("ing") else []
        seen: list[str] = []
        for c in cands:
            if c in idx and c not in seen:
                seen.append(c)
        return seen

    def synonyms(self, word: str, pos: str | None = None) -> list[str]:
        """Single-word synonyms of ``word`` over all its synsets (all parts of speech when ``pos``
        is None), in WordNet's sense order, without the word itself; deterministic."""
        key = (word.lower(), pos)
        if key in self._cache:
            return self._cache[key]
        out: list[str] = []
        for p in ([pos] if pos else list(_POS)):
            idx = self._load_index(p)
            for lemma in self.lemmas(word, p):
                for off in idx[lemma]:
                    for s in self._synset(p, off):
                        if "_" not in s and "-" not in s and s != word.lower() and s != lemma and s not in out:
                            out.append(s)
        self._cache[key] = out
        return out
