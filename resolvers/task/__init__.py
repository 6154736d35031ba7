"""Task: tasks on a board (create, update, move, archive, delete) and their comments."""
