# The shipped default models as a user meets them on a fresh machine, with no training:
#  - `seek chat` with no -m and no sampling flag loads models/seek-tiny with its generation_config.json
#    (temperature 0.5, top-p 0.95) and answers held-out arithmetic, reasoning first, the answer on its own line (at least 15 of 20;
#    20 when this was written);
#  - `seek eval` on other held-out problems measures both shipped models near their own run's card
#    (models/README.md: teacher 93.8%, distilled student 73.4% greedy pass@1 on 64 problems).
# Usage: cmake -DSEEK=... -DMODELS=.../models -DWORK=... -P cli_shipped_model.cmake
file(REMOVE_RECURSE ${WORK})
file(MAKE_DIRECTORY ${WORK})

# Held-out questions, made by seek's own generator (never in any training split).
execute_process(COMMAND ${SEEK} corpus --out ${WORK}/heldout.jsonl -n 20 --split heldout --min-difficulty 2
                        --max-difficulty 3 --countdown-fraction 0 --worked-fraction 1 --sloppy-fraction 0 --seed 123
                RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "seek corpus failed (${rc})")
endif()
file(STRINGS ${WORK}/heldout.jsonl docs)
set(input "")
set(answers "")
foreach(doc ${docs})
  string(JSON q GET "${doc}" question)
  string(JSON a GET "${doc}" answer)
  string(APPEND input "${q}\n")
  list(APPEND answers "${a}")
endforeach()
string(APPEND input "/exit\n")
file(WRITE ${WORK}/chat-input.txt "${input}")
execute_process(COMMAND ${SEEK} chat INPUT_FILE ${WORK}/chat-input.txt
                OUTPUT_VARIABLE out ERROR_VARIABLE err RESULT_VARIABLE rc)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "seek chat with the shipped default model failed (${rc}):\n${err}\n${out}")
endif()
string(FIND "${out}" "models/seek-tiny" shown)
string(FIND "${out}" "(thinking)" thinks)
string(FIND "${out}" "temperature 0.5, top-p 0.95 (defaults from" defaults)
string(FIND "${out}" "seek-tiny: the MoE teacher after GRPO" card)
if(shown EQUAL -1 OR thinks EQUAL -1 OR defaults EQUAL -1 OR card EQUAL -1)
  message(FATAL_ERROR "seek chat did not load models/seek-tiny with its generation_config.json or did not reason:\n${out}")
endif()
set(right 0)
# The answer shows on its own line, without the template's <answer> tags.
string(FIND "${out}" "<answer>" tags)
if(NOT tags EQUAL -1)
  message(FATAL_ERROR "seek chat showed the <answer> tags:\n${out}")
endif()
foreach(a ${answers})
  string(FIND "${out}" "\n${a}\n" at)
  if(NOT at EQUAL -1)
    math(EXPR right "${right} + 1")
  endif()
endforeach()
list(LENGTH answers n)
message(STATUS "seek chat: ${right} of ${n} held-out questions answered right")
if(right LESS 15)
  message(FATAL_ERROR "the shipped model answered only ${right} of ${n} held-out questions right in seek chat:\n${out}")
endif()

# Greedy pass@1 on 48 other held-out problems; the floor is well below what their run's card measured.
foreach(m seek-tiny seek-tiny-student)
  execute_process(COMMAND ${SEEK} eval -m ${MODELS}/${m} --kinds arithmetic --min-difficulty 2 --max-difficulty 3
                          --problems 48 --samples 1 --max-new-tokens 320 --seed 99 --json ${WORK}/${m}.json
                  OUTPUT_VARIABLE eout ERROR_VARIABLE eerr RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "seek eval -m ${MODELS}/${m} failed (${rc}):\n${eerr}")
  endif()
  file(READ ${WORK}/${m}.json j)
  string(JSON p GET "${j}" pass1_greedy)
  message(STATUS "${m}: greedy pass@1 ${p} on 48 held-out problems")
  if(p LESS 0.5)
    message(FATAL_ERROR "${m}: greedy pass@1 ${p} is below 0.5 on held-out problems")
  endif()
endforeach()
