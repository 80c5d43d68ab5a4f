"""One-off studies, each in its folder with its write-up; ``experiments/README.md`` lists them.

A study answers one question once (what does compression cost, where does a
handshake's time go) and keeps its command beside its findings, so that it can
be run again. What each run writes (raw JSON, collapsed stacks, captures) is
regenerated, not committed; the write-ups and the plots they show are.
The durable side-by-side comparison is ``bench/``, which no study here is
part of; studies may use its load client and servers.
"""
