"""The probabilistic record-linkage model (Splink on DuckDB): blocking, comparisons, EM training, scoring."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from accord.identity.match_records import normalise

# Each comparison of the model (its output column) and the record fields it stands for ("fields that agreed").
COMPARED: dict[str, tuple[str, ...]] = {
    "first_name": ("first_name",),
    "last_name": ("last_name",),
    "birth_date": ("birth_date",),
    "address": ("address", "postcode"),
    "city": ("city",),
    "email": ("email",),
    "phone": ("phone",),
    "record_source": (),  # not a field of the person
}
# Names are weighed by their frequency within the record's country (a common name agreeing says less than a rare
# one, and names cluster by country: when the cities agree, so do the countries, and a Chinese name's frequency
# among all records would understate how often two Chinese shoppers share it). Cities by their overall frequency.
COUNTRY_TF_COLUMNS: tuple[str, ...] = ("first_name", "last_name")
TF_COLUMNS: tuple[str, ...] = ("city",)
# The smallest m probability a trained level keeps: EM gives 0 to a level no match showed in the sample (e.g. a
# customer who moved abroad), which would make that level veto a match outright.
M_FLOOR = 1e-4


@dataclass(frozen=True)
class ScoredPair:
    """Two records (profile ids) and how likely they are one person; the fields that agreed."""

    left: str
    right: str
    probability: float
    agreeing: tuple[str, ...]


def _name_comparison(column: str) -> Any:
    """Exact (weighed by the name's frequency), Jaro-Winkler 0.92, sounding alike, Jaro-Winkler 0.8, else.

    First and last name are separate comparisons, so an exact full name is weighed by the product of the two
    names' frequencies: a full name's own frequency would count the pair itself (a rare name seen twice because
    it is one person's would look common)."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    sound = column.replace("_name", "_sound")
    return cl.CustomComparison(
        output_column_name=column,
        comparison_levels=[
            cll.NullLevel(column),
            # exact within one country (the frequency of the name there weighs it); across countries: next level
            cll.ExactMatchLevel(f"{column}_cc").configure(
                tf_adjustment_column=f"{column}_cc", label_for_charts=f"{column} exact (same country)"
            ),
            cll.JaroWinklerLevel(column, 0.92),
            cll.ExactMatchLevel(sound).configure(label_for_charts=f"{column} sounds alike"),
            cll.JaroWinklerLevel(column, 0.8),
            cll.ElseLevel(),
        ],
    )


def _birth_comparison() -> Any:
    """Exact, day and month swapped (a form filled in the other order), one digit off, within a year, else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(
        output_column_name="birth_date",
        comparison_levels=[
            cll.NullLevel("birth_date"),
            cll.ExactMatchLevel("birth_date"),
            cll.CustomLevel(
                "year(birth_date_l) = year(birth_date_r) AND month(birth_date_l) = day(birth_date_r) "
                "AND day(birth_date_l) = month(birth_date_r)",
                "day and month swapped",
            ),
            cll.CustomLevel(
                "levenshtein(CAST(birth_date_l AS VARCHAR), CAST(birth_date_r AS VARCHAR)) <= 1", "one digit off"
            ),
            cll.AbsoluteDateDifferenceLevel("birth_date", threshold=1, metric="year", input_is_string=False),
            # two birth dates years apart that are no slip of the pen: EM learns this from blocks of same-named
            # pairs, where namesakes pass for matches and inflate it; stated instead (1 in 200 true pairs)
            cll.ElseLevel().configure(m_probability=0.005, fix_m_probability=True),
        ],
    )


def _address_comparison() -> Any:
    """The home as one piece of evidence: street, house numbers and postcode move together."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    return cl.CustomComparison(
        output_column_name="address",
        comparison_levels=[
            cll.And(cll.NullLevel("address"), cll.NullLevel("postcode")),
            cll.And(
                cll.ExactMatchLevel("street"), cll.ExactMatchLevel("house"), cll.ExactMatchLevel("postcode")
            ).configure(label_for_charts="street, house and postcode"),
            cll.And(
                cll.ExactMatchLevel("house"),
                cll.JaroWinklerLevel("street", 0.88),
                cll.Or(cll.ExactMatchLevel("postcode"), cll.NullLevel("postcode")),
            ).configure(label_for_charts="house, street alike, postcode not different"),
            cll.And(cll.ExactMatchLevel("postcode"), cll.ExactMatchLevel("house")).configure(
                label_for_charts="postcode and house"
            ),
            cll.ExactMatchLevel("postcode"),
            cll.ElseLevel(),
        ],
    )


def _stated(level: Any, m: float, u: float) -> Any:
    """A comparison level with fixed m and u probabilities (not trained)."""
    return level.configure(m_probability=m, u_probability=u, fix_m_probability=True, fix_u_probability=True)


def _settings() -> Any:
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl
    from splink import SettingsCreator, block_on

    return SettingsCreator(
        link_type="dedupe_only",
        unique_id_column_name="unique_id",
        blocking_rules_to_generate_predictions=[
            # the same birth date and one initial (not the birth date alone: at a million records that is 20
            # million pairs, nearly all strangers; a typo rarely hits a name's first letter)
            block_on("birth_date", "substr(first_name, 1, 1)"),
            block_on("birth_date", "substr(last_name, 1, 1)"),
            block_on("first_name", "last_name"),
            block_on("last_name", "city"),
            block_on("first_name", "city"),
            block_on("first_sound", "last_sound"),
            block_on("postcode", "house"),
        ],
        comparisons=[
            _name_comparison("first_name"),
            _name_comparison("last_name"),
            _birth_comparison(),
            _address_comparison(),
            cl.CustomComparison(  # city and country together: a city agreeing implies its country does
                output_column_name="city",
                comparison_levels=[
                    cll.And(cll.NullLevel("city"), cll.NullLevel("country")),
                    cll.ExactMatchLevel("city").configure(tf_adjustment_column="city"),
                    cll.ExactMatchLevel("country"),
                    cll.ElseLevel(),
                ],
            ),
            # emails and phones: two profiles still apart almost never share one (it would have merged them), so
            # EM cannot learn these levels; they are stated and fixed. An old email or phone that differs is weak
            # evidence against (people change them); one made of the same name is weak evidence for, since
            # namesakes' emails look alike too.
            cl.CustomComparison(
                output_column_name="email",
                comparison_levels=[
                    cll.NullLevel("email"),
                    _stated(cll.ExactMatchLevel("email"), 0.02, 1e-6),
                    _stated(cll.ExactMatchLevel("email_user"), 0.02, 5e-4),
                    _stated(cll.LevenshteinLevel("email_user", 1), 0.02, 2e-3),
                    _stated(cll.ElseLevel(), 0.94, 1 - 2.501e-3),
                ],
            ),
            cl.CustomComparison(  # two records of one source system (e.g. two CRM rows) vs records of two
                output_column_name="record_source",
                comparison_levels=[
                    cll.NullLevel("record_sources"),
                    cll.CustomLevel("list_has_any(record_sources_l, record_sources_r)", "records of one source"),
                    cll.ElseLevel(),
                ],
            ),
            cl.CustomComparison(
                output_column_name="phone",
                comparison_levels=[
                    cll.NullLevel("phone"),
                    _stated(cll.ExactMatchLevel("phone"), 0.02, 1e-6),
                    _stated(cll.LevenshteinLevel("phone", 1), 0.01, 1e-5),
                    _stated(cll.ElseLevel(), 0.97, 1 - 1.1e-5),
                ],
            ),
        ],
        retain_intermediate_calculation_columns=True,
        retain_matching_columns=False,
    )


def is_current(model: dict[str, Any]) -> bool:
    """Whether a stored model has this version's comparisons (an older one is retrained, not reused)."""
    return sorted(str(c.get("output_column_name")) for c in model.get("comparisons", [])) == sorted(COMPARED)


class MatchModel:
    """One Splink linker over a table of records: trains (EM) or loads a model, then scores pairs."""

    def __init__(self, records: pa.Table, model: dict[str, Any] | None = None, new_ids: Sequence[str] = ()) -> None:
        import duckdb
        from splink import DuckDBAPI, Linker

        logging.getLogger("splink").setLevel(logging.WARNING)
        # no extension may be fetched at run time: everything used here is built into DuckDB
        self.con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
        self.con.register("accord_raw_records", records)
        normalise(self.con, "accord_raw_records", "accord_records")
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
        self._register_country_frequencies()
        self.trained = model is not None

    def _register_country_frequencies(self) -> None:
        """Term-frequency lookups of the names within each country, over all records (old and new)."""
        for column in COUNTRY_TF_COLUMNS:
            self._run(
                f"CREATE OR REPLACE TABLE accord_tf_{column} AS SELECT {column}_cc, "
                f"count(*) / sum(count(*)) OVER (PARTITION BY country) AS tf_{column}_cc "
                f"FROM accord_records WHERE {column}_cc IS NOT NULL GROUP BY country, {column}_cc"
            )
            frame = self.db_api.register(f"accord_tf_{column}", table_name=f"tf_{column}")
            self.linker.table_management.register_term_frequency_lookup(frame, f"{column}_cc")

    def _run(self, sql: str) -> list[Any]:
        return self.con.execute(sql).fetchall()  # fetch to the end: DuckDB 2 keeps unfinished results open

    def train(self) -> None:
        """Estimate the model without labels: prior from deterministic rules, u by sampling, m by EM.

        Data in which few matches remain (a --full run after earlier merges) can drive EM's match share to
        zero, which Splink cannot take the logarithm of: such a pass is redone with the prior held fixed, and
        skipped if that fails too (the other pass and the stated starting values still give a model).
        """
        from splink import block_on
        from splink.internals.exceptions import SplinkException

        training = self.linker.training
        settings = self.linker._settings_obj
        with contextlib.suppress(ValueError, ZeroDivisionError, SplinkException):  # else: the settings' default
            training.estimate_probability_two_random_records_match(
                [
                    block_on("first_name", "last_name", "birth_date"),
                    "l.email = r.email",
                    "l.phone = r.phone",
                ],
                recall=0.4,
            )
        floor = 1.0 / max(self.size, 2) ** 2
        if not floor <= settings._probability_two_random_records_match < 1.0:
            settings._probability_two_random_records_match = floor  # no deterministic match left at all
        training.estimate_u_using_random_sampling(max_pairs=2e5, seed=1, num_chunks=1)
        em_pairs = 1e6 if self.size > 200_000 else None  # small data: all blocked pairs, no sampling probe
        for rule in (block_on("birth_date"), block_on("first_name", "last_name")):
            for fixed in (False, True):
                try:
                    training.estimate_parameters_using_expectation_maximisation(
                        rule,
                        max_pairs=em_pairs,
                        record_sample_proportion=0.1,
                        fix_probability_two_random_records_match=fixed,
                    )
                    break
                except (ValueError, ZeroDivisionError, SplinkException):
                    continue
        for comparison in settings.comparisons:  # a level EM saw no match in is rare, not impossible
            for level in comparison.comparison_levels:
                if level.is_null_level:
                    continue
                m = level.m_probability
                if isinstance(m, float) and m < M_FLOOR:
                    level.m_probability = M_FLOOR
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
            if not self._run("SELECT count(*) FROM accord_new")[0][0]:
                return []  # the new profiles carry nothing to match on (e.g. a name alone)
            for column in TF_COLUMNS:  # term frequencies over all records, old and new
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
            blank = [None] * table.num_rows  # Splink leaves out a comparison's weights when it cannot apply it
            weights = {
                name: table.column(f"mw_{name}").to_pylist() if f"mw_{name}" in table.column_names else blank
                for name in COMPARED
            }
            lefts, rights = table.column("unique_id_l").to_pylist(), table.column("unique_id_r").to_pylist()
            for i, probability in enumerate(table.column("match_probability").to_pylist()):
                agreeing = tuple(
                    f for name, fields in COMPARED.items() if (weights[name][i] or 0.0) > 0.0 for f in fields
                )
                pairs.append(ScoredPair(lefts[i], rights[i], float(probability), agreeing))
            frame.drop_table_from_database_and_remove_from_cache()
        return pairs

    def close(self) -> None:
        """Release the in-memory database."""
        self.con.close()
