"""Validation of ingested tables with Great Expectations, rules as data.

Every rule is a row of ``rules/validation_rules.csv`` (:mod:`.rules`). How a
file is checked (one suite per table kind):

1. :func:`.prepare.check_frame` builds the narrow frame GX reads (``row`` +
   the columns the suite reads). Native rules (``engine=native``) read the
   typed columns: GX's own expectations judge them (not null, unique,
   compound unique, value sets and bounds with ``$PARAMETER`` suite
   parameters, ``row_condition``, lengths, sums). Prepared rules read a
   column a pandas step computed, where GX has no expectation (the parse
   verdicts of ingest, running totals and group totals against the store, a
   pair in the budget's allocations); the table says why for each.
2. That frame goes through a ValidationDefinition of an ephemeral GX context
   (:mod:`.runtime`); :mod:`.engine` runs it for one file, :mod:`.batch` for
   many small files at once (each judged by its own fund's values),
   :mod:`.chunks` for a large file read in chunks.
3. Failed results become Chinese messages naming file, row, column and rule
   (:mod:`.messages`) in a :class:`.report.ValidationReport`.

Data Docs (:mod:`.docs`) render the suites and a fund's validations as HTML.
``budget_monitor.validate`` is the facade the rest of the package imports.

Budget against the store (BUD-009..BUD-013): a corrected budget replaces the
stored one, so it is checked against the payments already stored
(``ValidationContext.paid_by_unit`` / ``paid_by_doc`` / ``paid_by_pair``,
filled by the pipeline): a unit, doc_no or (doc_no, unit) allocation with
stored payments must stay in the budget (GX's distinct-values-contain-set,
one failure per missing value) and a unit's or doc_no's signed budget must
cover its net paid (every row of a short unit/doc_no fails).

Sign convention (PAY-008/PAY-009): a refund (业务类型 退回) is written as a
negative amount, every other payment as a positive (or zero) amount; the
net executed amount is the plain sum. A positive 退回 row is rejected rather
than guessed at, because flipping its sign silently could double-count.
"""
