"""The ticket's `SchemaEvolutionManager` and `DataTransformationManager`, as names for building
operations in migration files. They describe changes; running them is `upgrade`'s job (batched,
validated, undo-logged), never a side effect of calling these.

    from kgmigrate.managers import SchemaEvolutionManager as schema
    steps = [schema.add_property("Compound", "review_status", "unreviewed"),
             schema.modify_relationship("TREATS", "TREATS_CONDITION")]
"""

from kgmigrate import ops


class SchemaEvolutionManager:
    add_property = staticmethod(ops.add_property)
    remove_property = staticmethod(ops.remove_property)
    rename_property = staticmethod(ops.rename_property)
    copy_property = staticmethod(ops.copy_property)
    add_label = staticmethod(ops.add_label)
    remove_label = staticmethod(ops.remove_label)
    rename_label = staticmethod(ops.rename_label)
    modify_relationship = staticmethod(ops.retype_relationship)
    invert_relationship = staticmethod(ops.invert_relationship)
    create_index = staticmethod(ops.create_index)
    drop_index = staticmethod(ops.drop_index)


class DataTransformationManager:
    transform_property = staticmethod(ops.transform_property)
    change_type = staticmethod(ops.change_type)
    python_transform = staticmethod(ops.python_transform)
