"""Cleans names and descriptions saved before console.text refused control and bidi-override characters.

Names lose them (a control character becomes a space, runs of spaces collapse); descriptions keep line breaks
and tabs. A cleaned name that collides with another one of a unique kind gets " (2)", " (3)", … appended.
Audit records are history and are left as they were written.
"""

from django.db import migrations

from console.text import strip_unsafe, unsafe_character

# (app, model, unique name?) of every model with a person-typed name and description.
MODELS = [("policies", "Policy", False), ("policies", "AssignmentFilter", True), ("devices", "Group", True)]


def _free_name(model, name: str, pk: int, unique: bool) -> str:
    if not unique:
        return name
    candidate, n = name, 1
    while model.objects.filter(name=candidate).exclude(pk=pk).exists():
        n += 1
        candidate = f"{name} ({n})"
    return candidate


def clean(apps, schema_editor):
    for app, model_name, unique in MODELS:
        model = apps.get_model(app, model_name)
        for pk, name, description in model.objects.values_list("pk", "name", "description").iterator():
            updates = {}
            if unsafe_character(name):
                limit = model._meta.get_field("name").max_length
                updates["name"] = _free_name(model, strip_unsafe(name)[:limit] or f"Renamed {pk}", pk, unique)
            if description and unsafe_character(description, multiline=True):
                updates["description"] = strip_unsafe(description, multiline=True)
            if updates:
                model.objects.filter(pk=pk).update(**updates)


class Migration(migrations.Migration):
    dependencies = [
        ("console", "0003_service_counter_and_worker_heartbeats"),
        ("devices", "0002_onboarding_changes"),
        ("policies", "0001_initial"),
    ]

    operations = [migrations.RunPython(clean, migrations.RunPython.noop)]
