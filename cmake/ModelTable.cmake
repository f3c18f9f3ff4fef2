# The model table (src/models/model_table.json) drives the build: every implemented row's pipeline file
# src/models/<pipeline>.cpp and tiny-bundle file src/models/tiny/tiny_<tiny_bundle>.cpp are compiled, and
# their factories are registered through three generated lists that src/models/model_registry.cpp includes.
# The JSON itself is embedded into the runtime as a string (src/models/model_table.cpp).

set(DG_MODEL_TABLE_JSON ${CMAKE_CURRENT_SOURCE_DIR}/src/models/model_table.json)
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${DG_MODEL_TABLE_JSON})
file(READ ${DG_MODEL_TABLE_JSON} _dg_table)
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/generated/model_table_json.inc
     CONTENT "R\"dgtable(@_dg_table@)dgtable\"\n" @ONLY)

set(_dg_pipelines)
set(_dg_tinies)
string(JSON _dg_count LENGTH "${_dg_table}" types)
math(EXPR _dg_last "${_dg_count} - 1")
foreach(_i RANGE ${_dg_last})
  string(JSON _status GET "${_dg_table}" types ${_i} status)
  if(_status STREQUAL "implemented")
    string(JSON _pipeline GET "${_dg_table}" types ${_i} pipeline)
    string(JSON _tiny GET "${_dg_table}" types ${_i} tiny_bundle)
    list(APPEND _dg_pipelines ${_pipeline})
    list(APPEND _dg_tinies ${_tiny})
  endif()
endforeach()
list(REMOVE_DUPLICATES _dg_pipelines)
list(REMOVE_DUPLICATES _dg_tinies)

set(DG_MODEL_SOURCES)
set(_decls "// Generated from src/models/model_table.json by cmake/ModelTable.cmake.\n")
set(_pipes "")
set(_tinys "")
foreach(_p IN LISTS _dg_pipelines)
  list(APPEND DG_MODEL_SOURCES src/models/${_p}.cpp)
  string(APPEND _decls "std::unique_ptr<Pipeline> make_${_p}_pipeline(const PipelineConfig& config);\n")
  string(APPEND _pipes "    {\"${_p}\", make_${_p}_pipeline},\n")
endforeach()
foreach(_t IN LISTS _dg_tinies)
  list(APPEND DG_MODEL_SOURCES src/models/tiny/tiny_${_t}.cpp)
  string(APPEND _decls "void make_tiny_${_t}(const ModelSpec& spec, const std::string& dir, const TinyOptions& options);\n")
  string(APPEND _tinys "    {\"${_t}\", make_tiny_${_t}},\n")
endforeach()
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/generated/model_factory_declarations.inc CONTENT "${_decls}")
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/generated/model_pipeline_factories.inc CONTENT "${_pipes}")
file(CONFIGURE OUTPUT ${CMAKE_CURRENT_BINARY_DIR}/generated/model_tiny_factories.inc CONTENT "${_tinys}")
