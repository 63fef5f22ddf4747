# Writes OUT, a C++ source defining mlaudit::cli::build_commit(), the short git commit of
# SOURCE_DIR ("unknown" outside git). Run at every build (cli/CMakeLists.txt); the file is
# rewritten only when the commit changed, so an unchanged commit recompiles nothing.
execute_process(COMMAND git rev-parse --short HEAD WORKING_DIRECTORY "${SOURCE_DIR}"
                OUTPUT_VARIABLE commit OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET RESULT_VARIABLE rc)
if(NOT rc EQUAL 0 OR commit STREQUAL "")
  set(commit unknown)
endif()
set(text "// Generated at build time by cli/git_commit.cmake: the commit `mlaudit --version` prints.\nnamespace mlaudit::cli {\nconst char* build_commit() { return \"${commit}\"; }\n}  // namespace mlaudit::cli\n")
set(old "")
if(EXISTS "${OUT}")
  file(READ "${OUT}" old)
endif()
if(NOT old STREQUAL text)
  file(WRITE "${OUT}" "${text}")
endif()
