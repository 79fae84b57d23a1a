# Runs mpi_kill_main under mpirun -np 2 with one failure mode and checks the outcome:
#   cmake -DMPIRUN=... -DEXE=... -DMODE=exit|sigkill|hang [-DMPI_ARGS=...] -DEXPECT_RC=nonzero|any
#         [-DEXPECT_RANK0_ERROR=ON] -DMAX_SECONDS=N -P run_mpi_failure.cmake
# The job must end within MAX_SECONDS (a hang is the failure this guards against). With
# EXPECT_RANK0_ERROR, rank 0 must report the timeout error within the 1 s timeout (+1 s).
set(rank0_error "rank 0: clear error after [0-9.e-]+ s: \\[dist\\] rank 0 of 2 \\(mpi\\): \
all_reduce\\(f32\\[1024\\] cpu, sum\\) at step 3 timed out after 1000 ms \\(a peer died")
string(TIMESTAMP start "%s")
separate_arguments(mpi_args UNIX_COMMAND "${MPI_ARGS}")
execute_process(
  COMMAND ${MPIRUN} ${mpi_args} -np 2 --oversubscribe ${EXE} ${MODE} 1000
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err TIMEOUT ${MAX_SECONDS})
string(TIMESTAMP end "%s")
math(EXPR seconds "${end} - ${start}")
message(STATUS "mode ${MODE}: exit code '${rc}' after ${seconds} s\n${out}${err}")
if(NOT rc MATCHES "^[0-9]+$")
  message(FATAL_ERROR "mpirun did not end within ${MAX_SECONDS} s: ${rc}")
endif()
if(EXPECT_RC STREQUAL "nonzero" AND rc EQUAL 0)
  message(FATAL_ERROR "mpirun returned 0 although rank 1 failed")
endif()
if(EXPECT_RANK0_ERROR AND NOT "${out}${err}" MATCHES "${rank0_error}")
  message(FATAL_ERROR "rank 0 did not report the timeout error in time: ${rank0_error}")
endif()
