"""What is the state of the standby right now: `standby status`, `--monitor`, metrics.

- `journal`: the last success and failure of each action (snapshot, ship, stream, replay,
  drill) and running totals, in `<state_dir>/status/actions.json`;
- `model`: the pure status model, built from the catalog, the shipped state, the redo logs'
  sizes, the stream's position and the journal, at an injected `now_ms`;
- `monitor`: the model judged against `[monitor]` thresholds: OK / WARNING / CRITICAL, one
  Nagios-style line;
- `gather`: reads those inputs from a server's settings (the one module here that touches disk);
- `report`: the model in words (durations and sizes from `standby.words`).
"""
