# libFuzzer targets, built with clang (the project compiler is GCC) by a custom command, and
# short smoke runs on a seed corpus as ctests labelled `fuzz`. Needs clang++ and libFuzzer
# (Debian: clang, libclang-rt-14-dev); without them configuring fails unless
# -DIKELB_SKIP_FUZZ=ON, so a missing fuzz test never looks like a passing one.
find_program(IKELB_CLANGXX NAMES clang++ clang++-14)
set(IKELB_FUZZ_FLAGS -std=c++20 -g -O1 ${IKELB_WARNING_FLAGS}
    -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all)
if(IKELB_CLANGXX AND NOT IKELB_FUZZ_WORKS)
  # Probe at configure time (until it succeeds once): clang without the libFuzzer runtime cannot
  # link a target.
  set(probe_dir ${CMAKE_BINARY_DIR}/fuzz_probe)
  file(WRITE ${probe_dir}/probe.cc
       "#include <cstddef>\n#include <cstdint>\n"
       "extern \"C\" int LLVMFuzzerTestOneInput(const uint8_t*, size_t) { return 0; }\n")
  execute_process(COMMAND ${IKELB_CLANGXX} ${IKELB_FUZZ_FLAGS} ${probe_dir}/probe.cc
                          -o ${probe_dir}/probe
                  RESULT_VARIABLE probe_result OUTPUT_QUIET ERROR_QUIET)
  if(probe_result EQUAL 0)
    set(IKELB_FUZZ_WORKS ON CACHE INTERNAL "clang++ can build libFuzzer targets")
  endif()
endif()
if(NOT (IKELB_CLANGXX AND IKELB_FUZZ_WORKS) AND NOT IKELB_SKIP_FUZZ)
  message(FATAL_ERROR "clang++ with libFuzzer not found (Debian: clang, libclang-rt-14-dev); "
                      "install them or configure with -DIKELB_SKIP_FUZZ=ON")
endif()

# ikelb_fuzz_binary(NAME SOURCES src... [INCLUDES dir...] [LINK flag...]): the fuzzer binary
# ${CMAKE_CURRENT_BINARY_DIR}/NAME, built by `all`. Sources are relative to the current source
# directory or absolute.
function(ikelb_fuzz_binary name)
  if(NOT (IKELB_CLANGXX AND IKELB_FUZZ_WORKS))
    return()
  endif()
  cmake_parse_arguments(F "" "" "SOURCES;INCLUDES;LINK" ${ARGN})
  set(bin ${CMAKE_CURRENT_BINARY_DIR}/${name})
  set(sources)
  foreach(s IN LISTS F_SOURCES)
    cmake_path(ABSOLUTE_PATH s BASE_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND sources ${s})
  endforeach()
  list(TRANSFORM F_INCLUDES PREPEND -I OUTPUT_VARIABLE includes)
  # Headers are dependencies too: any header in the include directories.
  set(headers)
  foreach(dir IN LISTS F_INCLUDES)
    file(GLOB h ${dir}/*.h)
    list(APPEND headers ${h})
  endforeach()
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${IKELB_CLANGXX} ${IKELB_FUZZ_FLAGS} ${includes} ${sources} ${F_LINK} -o ${bin}
    DEPENDS ${sources} ${headers}
    COMMENT "Building libFuzzer target ${name} with ${IKELB_CLANGXX}"
    VERBATIM)
  add_custom_target(${name} ALL DEPENDS ${bin})
endfunction()

# ikelb_fuzz_smoke(TEST BINARY SECONDS CORPUS dir... [ENVIRONMENT VAR=value...]): a ctest
# (label fuzz) that runs BINARY for SECONDS. New inputs go to a scratch directory in the build
# tree (libFuzzer writes to the first corpus directory), crash artifacts next to it; the seed
# corpora in the source tree are read only.
function(ikelb_fuzz_smoke test binary seconds)
  if(NOT (IKELB_CLANGXX AND IKELB_FUZZ_WORKS))
    return()
  endif()
  cmake_parse_arguments(F "" "" "CORPUS;ENVIRONMENT" ${ARGN})
  set(work ${CMAKE_CURRENT_BINARY_DIR}/${test}_work)
  list(JOIN F_CORPUS "' '" corpora)
  add_test(NAME ${test}
           COMMAND sh -c "rm -rf '${work}' && mkdir -p '${work}/corpus' && exec '${CMAKE_CURRENT_BINARY_DIR}/${binary}' -max_total_time=${seconds} -print_final_stats=1 -artifact_prefix='${work}/' '${work}/corpus' '${corpora}'")
  math(EXPR timeout "${seconds} * 3 + 30")
  set_tests_properties(${test} PROPERTIES LABELS fuzz TIMEOUT ${timeout}
                       ENVIRONMENT "${F_ENVIRONMENT}")
endfunction()
