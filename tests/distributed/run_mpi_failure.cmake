# Runs a rank-failure test program (mpi_kill_main: all-reduces; mpi_pipeline_kill_main: a
# pipeline) under mpirun with one failure mode of rank 1 and checks the outcome:
#   cmake -DMPIRUN=... -DEXE=... [-DNP=2|4] -DOP=all_reduce|recv -DMODE=exit|sigkill|hang
#         [-DMPI_ARGS=...] -DEXPECT_RC=nonzero|any [-DERRORS_FROM=0;2;3] [-DANY_ERROR=ON]
#         -DMAX_SECONDS=N -P run_mpi_failure.cmake
# The job must end within MAX_SECONDS (a hang is the failure this guards against). Each rank
# in ERRORS_FROM (with ANY_ERROR: at least one rank) must report the communicator's timeout
# error for its OP at step 3 within the 1 s timeout (+1 s).
if(NOT NP)
  set(NP 2)
endif()
if(OP STREQUAL "all_reduce")
  set(op_pattern "all_reduce\\(f32\\[1024\\] cpu, sum\\)")
else()
  set(op_pattern "recv\\([^)]*from [0-9]+, tag [0-9]+\\)")
endif()
function(timeout_error rank out)
  set(${out} "rank ${rank}: clear error after [0-9.e-]+ s: \\[dist\\] rank ${rank} of ${NP} \
\\(mpi\\): ${op_pattern} at step 3 timed out after 1000 ms \\(a peer died" PARENT_SCOPE)
endfunction()
string(TIMESTAMP start "%s")
separate_arguments(mpi_args UNIX_COMMAND "${MPI_ARGS}")
execute_process(
  COMMAND ${MPIRUN} ${mpi_args} -np ${NP} --oversubscribe ${EXE} ${MODE} 1000
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${MAX_SECONDS})
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")
message(STATUS "np ${NP} mode ${MODE}: exit code '${rc}' after ${seconds} s\n${out}${err}")
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "mpirun did not end within ${MAX_SECONDS} s: ${rc}")
endif()
if(EXPECT_RC STREQUAL "nonzero" AND rc EQUAL 0)
  message(FATAL_ERROR "mpirun returned 0 although rank 1 failed")
endif()
foreach(rank IN LISTS ERRORS_FROM)
  timeout_error(${rank} expected)
  if(NOT "${out}${err}" MATCHES "${expected}")
    message(FATAL_ERROR "rank ${rank} did not report the timeout error in time: ${expected}")
  endif()
endforeach()
if(ANY_ERROR)
  timeout_error("[0-9]" expected)
  if(NOT "${out}${err}" MATCHES "${expected}")
    message(FATAL_ERROR "no rank reported the timeout error in time: ${expected}")
  endif()
endif()
