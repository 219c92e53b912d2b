"""The probabilistic record-linkage model (Splink on DuckDB): blocking, comparisons, EM training, scoring."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

# The fields a match record carries, as read from profiles' traits (see matching.records_from_events).
RECORD_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "birth_date",
    "address",
    "postcode",
    "city",
    "email",
    "phone",
)
# Human names of the comparisons, in the order of the model's comparisons (for "fields that agreed").
COMPARED: tuple[str, ...] = ("first_name", "last_name", "birth_date", "address", "city", "email", "phone")

# Normalisation, in Splink's own DuckDB: lower case, no accents (Polish ł too), no punctuation; dates checked.
_NORMALISE = r"""
CREATE OR REPLACE TABLE {out} AS
SELECT
    unique_id,
    nullif(regexp_replace(strip_accents(replace(lower(trim(first_name)), 'ł', 'l')), '[^\p{{L}}\p{{N}}]+', '', 'g'), '')
        AS first_name,
    nullif(regexp_replace(strip_accents(replace(lower(trim(last_name)), 'ł', 'l')), '[^\p{{L}}\p{{N}}]+', '', 'g'), '')
        AS last_name,
    CAST(try_strptime(left(trim(birth_date), 10), '%Y-%m-%d') AS DATE) AS birth_date,
    nullif(regexp_replace(strip_accents(replace(lower(trim(address)), 'ł', 'l')), '[^\p{{L}}\p{{N}}]+', ' ', 'g'), '')
        AS address,
    nullif(regexp_replace(upper(trim(postcode)), '[^\p{{L}}\p{{N}}]+', '', 'g'), '') AS postcode,
    nullif(strip_accents(lower(trim(city))), '') AS city,
    nullif(lower(trim(email)), '') AS email,
    nullif(right(regexp_replace(phone, '[^0-9]+', '', 'g'), 9), '') AS phone
FROM {src}
WHERE coalesce(first_name, last_name) IS NOT NULL
  -- a name alone never tells two people apart: a record needs something more to be matched
  AND coalesce(birth_date, address, postcode, city, email, phone) IS NOT NULL
"""


@dataclass(frozen=True)
class ScoredPair:
    """Two records (profile ids) and how likely they are one person; the fields that agreed."""

    left: str
    right: str
    probability: float
    agreeing: tuple[str, ...]


def _settings() -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            block_on("birth_date"),
            block_on("first_name", "last_name"),
            block_on("substr(first_name, 1, 1)", "last_name", "city"),
            block_on("postcode", "substr(last_name, 1, 1)"),
        ],
        comparisons=[
            cl.JaroWinklerAtThresholds("first_name", [0.92, 0.8]).configure(term_frequency_adjustments=True),
            cl.LevenshteinAtThresholds("last_name", [1, 2]).configure(term_frequency_adjustments=True),
            cl.DateOfBirthComparison(
                "birth_date", input_is_string=False, datetime_thresholds=[1, 1], datetime_metrics=["month", "year"]
            ),
            # one comparison for the home: street and postcode move together, so they are not independent evidence
            cl.CustomComparison(
                output_column_name="address",
                comparison_levels=[
                    cll.And(cll.NullLevel("address"), cll.NullLevel("postcode")),
                    cll.And(cll.ExactMatchLevel("address"), cll.ExactMatchLevel("postcode")),
                    cll.LevenshteinLevel("address", 3),
                    cll.ExactMatchLevel("postcode"),
                    cll.ElseLevel(),
                ],
            ),
            cl.ExactMatch("city"),
            # emails and phones rarely agree between profiles that are still apart (an equal one would have
            # merged them): EM cannot learn these, so they start from stated values
            # (and emails made of the same name are alike for namesakes too: a near miss is weak evidence)
            cl.LevenshteinAtThresholds("email", [2]).configure(
                m_probabilities=[0.85, 0.05, 0.1], u_probabilities=[1e-4, 0.01, 1 - 0.0101]
            ),
            cl.LevenshteinAtThresholds("phone", [1]).configure(
                m_probabilities=[0.85, 0.05, 0.1], u_probabilities=[1e-4, 1e-3, 1 - 0.0011]
            ),
        ],
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=False,
    )


class MatchModel:
    """One Splink linker over a table of records: trains (EM) or loads a model, then scores pairs."""

    def __init__(self, records: pa.Table, model: dict[str, Any] | None = None, new_ids: Sequence[str] = ()) -> None:
        import duckdb
        from splink import DuckDBAPI, Linker

        logging.getLogger("splink").setLevel(logging.WARNING)
        self.con = duckdb.connect(":memory:")
        self.con.register("accord_raw_records", records)
        self._run(_NORMALISE.format(out="accord_records", src="accord_raw_records"))
        self.con.unregister("accord_raw_records")
        self.db_api = DuckDBAPI(self.con)
        self.new_ids = list(new_ids)
        if self.new_ids:
            self.con.register("accord_new_ids", pa.table({"unique_id": self.new_ids}))
            self._run(
                "CREATE OR REPLACE TABLE accord_new AS SELECT r.* FROM accord_records r SEMI JOIN accord_new_ids n "
                "USING (unique_id)"
            )
            self._run(
                "CREATE OR REPLACE TABLE accord_old AS SELECT r.* FROM accord_records r ANTI JOIN accord_new_ids n "
                "USING (unique_id)"
            )
        self.records = self.db_api.register("accord_records", table_name="records")
        self.size = int(self._run("SELECT count(*) FROM accord_records")[0][0])
        self.linker = Linker(self.records, model if model is not None else _settings(), log_level=None)
        self.trained = model is not None

    def _run(self, sql: str) -> list[Any]:
        return self.con.execute(sql).fetchall()  # fetch to the end: DuckDB 2 keeps unfinished results open

    def train(self) -> None:
        """Estimate the model without labels: prior from deterministic rules, u by sampling, m by EM."""
        from splink import block_on

        training = self.linker.training
        training.estimate_probability_two_random_records_match(
            [
                block_on("first_name", "last_name", "birth_date"),
                "l.email = r.email",
                "l.phone = r.phone",
            ],
            recall=0.4,
        )
        training.estimate_u_using_random_sampling(max_pairs=2e5, seed=1, num_chunks=1)
        em_pairs = 1e6 if self.size > 200_000 else None  # small data: all blocked pairs, no sampling probe
        training.estimate_parameters_using_expectation_maximisation(
            block_on("birth_date"), max_pairs=em_pairs, record_sample_proportion=0.1
        )
        training.estimate_parameters_using_expectation_maximisation(
            block_on("first_name", "last_name"), max_pairs=em_pairs, record_sample_proportion=0.1
        )
        self.trained = True

    def model(self) -> dict[str, Any]:
        """The trained model as a JSON-able dict (kept for incremental runs)."""
        result: dict[str, Any] = self.linker.misc.save_model_to_json()
        return result

    def score(self, threshold: float) -> list[ScoredPair]:
        """Scored pairs at or above THRESHOLD: all pairs, or (incremental) those involving a new record."""
        inference = self.linker.inference
        if not self.new_ids:
            frames = [inference.predict(threshold_match_probability=threshold)]
        else:
            for column in ("first_name", "last_name"):  # term frequencies over all records, old and new
                self.linker.table_management.compute_tf_table(column)
            new = self.db_api.register("accord_new", table_name="new_records")
            old = self.db_api.register("accord_old", table_name="old_records")
            frames = [
                inference.predict_between(old, new, threshold_match_probability=threshold),
                inference.predict_within(new, threshold_match_probability=threshold),
            ]
        pairs: list[ScoredPair] = []
        for frame in frames:
            table = frame.as_pyarrow_table()
            weights = {name: table.column(f"mw_{name}").to_pylist() for name in COMPARED}
            lefts, rights = table.column("unique_id_l").to_pylist(), table.column("unique_id_r").to_pylist()
            for i, probability in enumerate(table.column("match_probability").to_pylist()):
                agreeing = tuple(name for name in COMPARED if (weights[name][i] or 0.0) > 0.0)
                pairs.append(ScoredPair(lefts[i], rights[i], float(probability), agreeing))
            frame.drop_table_from_database_and_remove_from_cache()
        return pairs

    def close(self) -> None:
        """Release the in-memory database."""
        self.con.close()
