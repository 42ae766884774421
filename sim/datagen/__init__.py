"""3D-language data generation (3D-LLM's data pipeline, template-driven) and map building for scenes.

Light to import: the mapper (torch) is imported only when a map is built.
"""

from sim.datagen.generator import DatagenConfig, generate_records
from sim.datagen.nav_goals import goal_heading
from sim.datagen.schema import RecordError, validate_record

__all__ = ["DatagenConfig", "RecordError", "generate_records", "goal_heading", "validate_record"]
