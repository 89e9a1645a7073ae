"""Compiled BM25 query kernels (numba): score a query's postings and select its top ``k``.

Imported only through :func:`rankstack.index.bm25._numba_kernels` (numba is the optional ``fast``
extra). The kernels compute exactly what :class:`~rankstack.index.bm25.BM25Index`'s numpy path
computes, bit for bit:

* each posting's clause score in float32, ``w - w / (1 + tf * ninv)`` (``w = float32(boost * idf)``,
  given per term; ``ninv`` per document -- Lucene norms: a 256-entry table indexed by the
  document's norm byte, the same values; no fast-math, so no reassociation or fused multiply-add);
* clause scores summed per document in float64, in the numpy path's order (query terms ascending,
  then postings in index order -- what ``np.bincount`` does), then rounded to float32;
* the top ``k`` by the numpy path's int64 key ``(float32 bits of the score) << 32 | id_rank``,
  largest first (score descending, ties by id descending), over documents whose float32 score is
  > 0: keys are distinct, so the ``k`` largest are the same documents in the same order, also among
  ties at the cut. Candidates are buffered as ``(score bits) << 32 | document`` and turned into keys
  (their id ranks read) only when the buffer fills -- then quickselect keeps the ``k`` best and later
  candidates must reach the ``k``-th's score -- and at the end (quickselect, then a sort).

Cache blocking (issue #22): documents are scored one block of ids at a time (``len(acc)``, 32,768 by
default: a 256 KiB float64 accumulator), each query term's postings -- ascending document ids --
advanced block by block, so the accumulator and the block's norms stay in L2 instead of every
posting reaching into ``num_docs``-sized arrays at random. Within a document the clause scores are
still added terms ascending, so the sums, and the results, do not depend on the block size. A block
starts at the smallest document id that some term still has a posting for (no work for ranges
without postings). The block's documents are then visited through its postings again (no touched
list): each sum is read and cleared, and only a sum that can reach the running threshold -- a
float64 comparison against the largest float64 that rounds below it -- is rounded and buffered.

Threshold guess: after the first block, a query whose top ``k`` spans several blocks starts with the
first block's ``r``-th best score as its threshold, ``r`` about twice the block's expected share of
the top ``k`` (``2 k * block / documents + 16``; documents in no particular order of score). If fewer
than ``k`` documents reach it, the query is scored again without a guess, so the results are exact
whatever the order of the documents (documents sorted by score cost a second pass).

Clause-score cache (:func:`clause_scores`): :class:`~rankstack.index.bm25.BM25Index` may keep every
posting's clause score for a boost of 1 at the current ``k1``/``b``/norms (the same float32
operations, so the same bits); query terms with a boost of 1 then add those instead of computing
them.

Memory per call is bounded: a float64 accumulator and an int32 scratch array of one block (allocated
once per thread by the caller; the kernel clears what it used) and an int64 candidate buffer of
``max(2k, k + 2048)`` entries (at most ``num_docs``). Batches loop over queries inside the kernel; no
(queries x documents) matrix.
"""

from __future__ import annotations

import numba
import numpy as np

_ONE = np.float32(1.0)


@numba.njit(cache=True, nogil=True)
def _select_largest(keys, n, k):  # pragma: no cover - compiled
    """Reorder ``keys[:n]`` (distinct) so that ``keys[:k]`` holds the ``k`` largest (quickselect)."""
    lo, hi, target = 0, n - 1, k - 1
    while lo < hi:
        mid = (lo + hi) >> 1
        a, b, c = keys[lo], keys[mid], keys[hi]  # median of three as the pivot
        pivot = max(min(a, b), min(max(a, b), c))
        i, j = lo, hi
        while i <= j:
            while keys[i] > pivot:
                i += 1
            while keys[j] < pivot:
                j -= 1
            if i <= j:
                keys[i], keys[j] = keys[j], keys[i]
                i += 1
                j -= 1
        if target <= j:
            hi = j
        elif target >= i:
            lo = i
        else:
            break


@numba.njit(cache=True, nogil=True)
def _lower_bound(a, lo, hi, x):  # pragma: no cover - compiled
    """The first position in ``a[lo:hi]`` (ascending) whose value is >= ``x`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@numba.njit(cache=True, nogil=True)
def clause_scores(offsets, post_docs, post_tfs, codes, ninv, idf, out):  # pragma: no cover - compiled
    """Every posting's float32 clause score for a boost of 1 (``w = idf[term]``), into ``out``: the
    same float32 operations as the query path, so the same bits."""
    for t in range(offsets.shape[0] - 1):
        w = idf[t]
        if codes.shape[0] > 0:
            for p in range(offsets[t], offsets[t + 1]):
                out[p] = w - w / (_ONE + post_tfs[p] * ninv[codes[post_docs[p]]])
        else:
            for p in range(offsets[t], offsets[t + 1]):
                out[p] = w - w / (_ONE + post_tfs[p] * ninv[post_docs[p]])


@numba.njit(cache=True, nogil=True)
def _score_block(offsets, post_docs, post_tfs, codes, ninv, pre, tids, weights, use_pre, base, end_doc, acc, pos,
                 bstart):  # pragma: no cover - compiled
    """Add the clause scores of the postings of documents ``[base, end_doc)`` to ``acc[d - base]``
    (float64, terms ascending: the numpy path's order for each document); ``ninv`` per document, or
    per norm byte (``codes``); terms with ``use_pre`` read them from ``pre`` (:func:`clause_scores`).
    Each term's postings in the block: ``[bstart[t], pos[t])`` (``pos`` advances past them)."""
    for t in range(tids.shape[0]):
        lo = pos[t]
        bstart[t] = lo
        hi = offsets[tids[t] + 1]
        if lo == hi:
            continue
        if post_docs[hi - 1] >= end_doc:
            hi = _lower_bound(post_docs, lo, hi, end_doc)
        pos[t] = hi
        w = weights[t]
        if use_pre[t]:
            for p in range(lo, hi):
                acc[post_docs[p] - base] += np.float64(pre[p])
        elif codes.shape[0] > 0:
            for p in range(lo, hi):
                d = post_docs[p]
                acc[d - base] += np.float64(w - w / (_ONE + post_tfs[p] * ninv[codes[d]]))
        else:
            for p in range(lo, hi):
                d = post_docs[p]
                acc[d - base] += np.float64(w - w / (_ONE + post_tfs[p] * ninv[d]))


@numba.njit(cache=True, nogil=True)
def _floor_of(bits, one, one_bits):  # pragma: no cover - compiled
    """A float64 below which a sum rounds to a float32 whose bits are below ``bits`` (>= 1): float32
    rounding is monotonic, so a sum below the float32 just under ``bits`` rounds to at most that
    float (for ``bits`` 1: the smallest positive float64, so that only a sum of 0 is below)."""
    if bits <= 1:
        return 5e-324
    one_bits[0] = np.int32(bits - 1)
    return max(np.float64(one[0]), 5e-324)


@numba.njit(cache=True, nogil=True)
def _rank_keys(keys, n, id_rank):  # pragma: no cover - compiled
    """``keys[:n]``, (score bits) << 32 | document, to the ranking keys (score bits) << 32 | id rank."""
    for i in range(n):
        x = keys[i]
        keys[i] = ((x >> 32) << 32) | np.int64(id_rank[x & 0xFFFFFFFF])


@numba.njit(cache=True, nogil=True)
def _compact(keys, n, k, id_rank, rank_to_doc):  # pragma: no cover - compiled
    """Keep in ``keys[:k]`` the ``k`` best of the ``n`` candidates ((score bits) << 32 | document;
    their ranking keys are distinct); returns the score bits of the ``k``-th best."""
    _rank_keys(keys, n, id_rank)
    _select_largest(keys, n, k)
    kth = keys[:k].min()
    for i in range(k):
        x = keys[i]
        keys[i] = ((x >> 32) << 32) | rank_to_doc[x & 0xFFFFFFFF]
    return kth >> 32


@numba.njit(cache=True, nogil=True)
def _one_query(offsets, post_docs, post_tfs, codes, ninv, pre, id_rank, rank_to_doc, tids, weights, use_pre, k,
               num_docs, acc, keys, scratch, pos, bstart, guess, one, one_bits, out_docs, out_scores,
               out_at):  # pragma: no cover - compiled
    """Score one query (``tids`` ascending, ``weights`` float32) and write its top ``k`` (``k`` >= 1)
    at ``out_docs[out_at:]``/``out_scores[out_at:]``; returns how many were written, or -1 when the
    guessed threshold (``guess``) proved too high: then nothing is written and the caller scores the
    query again without a guess.

    Cache blocking: the documents are scored ``len(acc)`` at a time (a block starts at the smallest
    document id any term still has a posting for), each term's postings advanced block by block (they
    are ascending per term), so the accumulator, the norms and the id ranks of a block stay in L2.
    Per document the clause scores are still added terms ascending, so the float64 sums are those
    of the unblocked order. Then the block's postings are read again to visit its documents: each
    sum is taken and cleared; only a sum that can beat the running threshold (a float64 comparison)
    is rounded and keyed. ``acc`` must be all zeros on entry and is all zeros again on return;
    ``keys`` holds the top-``k`` buffer (more than ``k`` entries, or ``num_docs``); ``scratch``:
    int32, the block size."""
    m = tids.shape[0]
    total = 0
    for t in range(m):
        pos[t] = offsets[tids[t]]
        total += offsets[tids[t] + 1] - pos[t]
    block = acc.shape[0]
    cap = keys.shape[0]
    least = np.int64(1)  # candidates need score bits >= least (1: a positive score)
    floor = 5e-324  # sums below it round to score bits < least (5e-324: only a sum of 0)
    guessed = False
    first = True
    n = 0
    while True:
        # the next block: from the smallest document id still to score
        base = num_docs
        for t in range(m):
            if pos[t] < offsets[tids[t] + 1]:
                base = min(base, np.int64(post_docs[pos[t]]))
        if base >= num_docs:
            break
        end_doc = min(base + block, num_docs)
        _score_block(offsets, post_docs, post_tfs, codes, ninv, pre, tids, weights, use_pre, base, end_doc, acc, pos,
                     bstart)
        if first:
            first = False
            # a threshold guessed from the first block: its r-th best score, r about twice this block's
            # expected share of the top k (documents in random order of score); sums are negated when
            # seen, so that each document counts once
            if guess and total >= 2 * k:
                share = (end_doc - base) / (num_docs - base)
                r = k if share >= 1.0 else min(k, np.int64(2.0 * k * share) + 16)
                c = 0
                for t in range(m):
                    for p in range(bstart[t], pos[t]):
                        j = post_docs[p] - base
                        a = acc[j]
                        one[0] = np.float32(a)
                        scratch[c] = one_bits[0]
                        c += a > 0.0
                        acc[j] = -abs(a)
                if c > r:
                    _select_largest(scratch, c, r)
                    g = np.int64(scratch[:r].min())
                    if g > 1:
                        guessed = True
                        least = g
                        floor = _floor_of(least, one, one_bits)
                for t in range(m):  # undo the negation (exact)
                    for p in range(bstart[t], pos[t]):
                        j = post_docs[p] - base
                        acc[j] = abs(acc[j])
        # visit the block's documents through its postings (a document's sum is taken and cleared on
        # its first visit); a sum that can reach ``least`` is rounded to float32 and, if it does,
        # buffered as (score bits) << 32 | document (no id rank yet: those are read at compaction)
        for t in range(m):
            for p in range(bstart[t], pos[t]):
                j = post_docs[p] - base
                a = acc[j]
                acc[j] = 0.0
                if a < floor:  # cannot reach least (or no match, or already visited: 0)
                    continue
                one[0] = np.float32(a)
                b = np.int64(one_bits[0])
                if b >= least:  # (b >= 1: float32 score > 0, the numpy path's matches)
                    keys[n] = (b << 32) | (base + j)
                    n += 1
                    if n == cap:  # keep the k best so far; later ones must reach the k-th's score
                        least = _compact(keys, n, k, id_rank, rank_to_doc)
                        n = k
                        floor = _floor_of(least, one, one_bits)
    # the k largest ranking keys, largest first: score descending, ties by id rank descending
    _rank_keys(keys, n, id_rank)
    if n > k:
        _select_largest(keys, n, k)
        n = k
    if guessed and n < k:  # fewer than k documents reach the guess: documents below it may belong
        return -1
    top = np.sort(keys[:n])
    for j in range(n):
        key = top[n - 1 - j]
        out_docs[out_at + j] = rank_to_doc[key & 0xFFFFFFFF]
        one_bits[0] = np.int32(key >> 32)
        out_scores[out_at + j] = one[0]
    return n


@numba.njit(cache=True, nogil=True)
def top_k_many(offsets, post_docs, post_tfs, codes, ninv, pre, id_rank, rank_to_doc, q_ptr, tids, weights, use_pre,
               k, acc, scratch, out_docs, out_scores, counts):  # pragma: no cover - compiled
    """Top ``k`` (1 <= ``k`` <= number of documents) of each query ``q`` (its terms
    ``tids[q_ptr[q]:q_ptr[q + 1]]``, ascending, with float32 ``weights``; ``ninv`` per document or,
    when ``codes`` -- uint8, one a document -- is not empty, per code; terms with ``use_pre`` -- a
    boost of 1 -- read their clause scores from ``pre``, :func:`clause_scores`'s output, which may be
    empty when no term uses it); query ``q``'s results go to ``out_docs[q * k:]``/``out_scores[q * k:]``,
    their number to ``counts[q]``. ``acc`` (float64, the block size: up to the number of documents,
    all zeros, and left so) and ``scratch`` (int32, at least the block size)."""
    num_docs = id_rank.shape[0]
    one = np.empty(1, np.float32)
    one_bits = one.view(np.int32)
    keys = np.empty(min(num_docs, max(2 * k, k + 2048)), np.int64)
    most = 1
    for q in range(q_ptr.shape[0] - 1):
        most = max(most, q_ptr[q + 1] - q_ptr[q])
    pos = np.empty(most, np.int64)
    bstart = np.empty(most, np.int64)
    for q in range(q_ptr.shape[0] - 1):
        lo, hi = q_ptr[q], q_ptr[q + 1]
        got = _one_query(offsets, post_docs, post_tfs, codes, ninv, pre, id_rank, rank_to_doc, tids[lo:hi],
                         weights[lo:hi], use_pre[lo:hi], k, num_docs, acc, keys, scratch, pos, bstart, True, one,
                         one_bits, out_docs, out_scores, q * k)
        if got < 0:  # the guessed threshold was too high for this query: score it again, exactly
            got = _one_query(offsets, post_docs, post_tfs, codes, ninv, pre, id_rank, rank_to_doc, tids[lo:hi],
                             weights[lo:hi], use_pre[lo:hi], k, num_docs, acc, keys, scratch, pos, bstart, False,
                             one, one_bits, out_docs, out_scores, q * k)
        counts[q] = got
