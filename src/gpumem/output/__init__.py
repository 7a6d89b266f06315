"""What the user sees: the result types with their JSON shape (`report`), each command's tables described once
(`views`), table layout (`tables`, `units`), word wrapping and notes/errors on stderr (`wrapping`), the writers
(`render`) and read progress on stderr.

Imports `model`, `reading` (untrusted-text cleaning, atomic writes) and `planning`; nothing imports it but
`api` and `cli`."""
