// Sanitizer defaults built into every fuzz target, so that a target run by hand behaves as
// under scripts/fuzz.sh. UBSAN_OPTIONS in the environment still overrides each of them.
//
// pointer-overflow is compiled recoverable (see the top-level CMakeLists.txt) only so
// that ubsan.supp can take effect; halt_on_error=1 makes every report that it does not
// suppress fatal again, as for the other UBSan checks.
extern "C" const char* __ubsan_default_options() {
  return "halt_on_error=1:print_stacktrace=1:suppressions=" RTM_FUZZ_UBSAN_SUPPRESSIONS;
}
