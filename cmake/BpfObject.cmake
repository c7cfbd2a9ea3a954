# bpf_object(NAME SOURCE [DEPENDS headers...])
# Compiles SOURCE with clang -target bpf into NAME.bpf.o, generates NAME.skel.h with
# `bpftool gen skeleton` (skeleton struct and functions named NAME_bpf, so they cannot clash with
# a C++ namespace NAME), and defines the INTERFACE target NAME_skel that puts the skeleton on the
# include path and links libbpf.
find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)
execute_process(COMMAND gcc -dumpmachine OUTPUT_VARIABLE IKELB_MULTIARCH
                OUTPUT_STRIP_TRAILING_WHITESPACE)

function(bpf_object name source)
  cmake_parse_arguments(B "" "" "DEPENDS" ${ARGN})
  set(obj ${CMAKE_CURRENT_BINARY_DIR}/${name}.bpf.o)
  set(skel ${CMAKE_CURRENT_BINARY_DIR}/${name}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_x86 ${IKELB_WARNING_FLAGS}
            -I${CMAKE_SOURCE_DIR}/ebpf -I/usr/include/${IKELB_MULTIARCH}
            -c ${CMAKE_CURRENT_SOURCE_DIR}/${source} -o ${obj}
    DEPENDS ${source} ${B_DEPENDS}
    COMMENT "BPF ${source}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}
    DEPENDS ${obj}
    COMMENT "skeleton ${name}.skel.h"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${CMAKE_CURRENT_BINARY_DIR})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
