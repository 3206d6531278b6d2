# Shared by scripts/make_models.sh and scripts/make_multitask_policy.sh (sourced; BIN is the venv's bin folder).

train() {  # train TRAINER CONFIG RUN_DIR [OVERRIDES...]: a run interrupted (or finished) earlier resumes from its
  # train state
  local trainer=$1 config=$2 run=$3
  shift 3
  if [ -f "$run/train_state.pt" ]; then set -- "$@" "train.resume=$run"; fi
  "$BIN/$trainer" --config "$config" "train.out_dir=$run" "$@"
}
