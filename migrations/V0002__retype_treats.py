"""TREATS becomes TREATS_CONDITION, keeping its endpoints and properties."""

from kgmigrate import Migration, ops

migration = Migration(
    author="vitalyst-data",
    steps=[
        ops.batched(rel_type="TREATS",
                    apply="CREATE (s)-[r:TREATS_CONDITION]->(t) SET r = properties(e) DELETE e",
                    creates="r", deletes=True, down_on="TREATS_CONDITION",
                    down="CREATE (s)-[r:TREATS]->(t) SET r = properties(e) DELETE e"),
    ],
)
