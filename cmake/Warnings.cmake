# One warning policy for every target of the project: dg_warnings(<target>). -DDG_WERROR=ON turns
# warnings into errors.
function(dg_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic $<$<BOOL:${DG_WERROR}>:-Werror>)
endfunction()
