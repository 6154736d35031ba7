"""Project: projects, project members, labels and custom fields."""
