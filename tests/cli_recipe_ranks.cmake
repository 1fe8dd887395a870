# The smoke recipe on two MPI processes (seek recipe --ranks 2): every stage finishes, every training,
# sampling and evaluation stage ran under mpiexec, and the report card is complete.
# (That those stages compute what one process computes is tested in test_mpi and the unit tests.)
# Usage: cmake -DSEEK=... -DOUT=... -P cli_recipe_ranks.cmake
file(REMOVE_RECURSE ${OUT})
execute_process(COMMAND ${SEEK} recipe --preset smoke --out ${OUT} --ranks 2 RESULT_VARIABLE rc ERROR_VARIABLE log)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "seek recipe --preset smoke --ranks 2 failed (${rc}):\n${log}")
endif()
foreach(stage "pretrain-teacher: mpiexec -n 2 seek pretrain" "eval-teacher-base: mpiexec -n 2 seek eval"
              "grpo-teacher: mpiexec -n 2 seek grpo" "pretrain-student: mpiexec -n 2 seek pretrain"
              "distill: mpiexec -n 2 seek distill" "grpo-student: mpiexec -n 2 seek grpo"
              "eval-student-grpo: mpiexec -n 2 seek eval")
  string(FIND "${log}" "${stage}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "seek recipe --ranks 2 did not run \"${stage}\":\n${log}")
  endif()
endforeach()
file(READ ${OUT}/report.json report)
foreach(key base_pass1 grpo_pass1 student_distill_pass1 student_grpo_pass1 wall_seconds)
  string(JSON value ERROR_VARIABLE err GET "${report}" ${key})
  if(err OR value STREQUAL "" OR value STREQUAL "null")
    message(FATAL_ERROR "report.json: ${key} is missing or null (${err})")
  endif()
endforeach()
