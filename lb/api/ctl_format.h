// ikelbctl's human output: the admin API's JSON as aligned tables.
#pragma once

#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace ikelb {

// Rows of cells, the first row the header; columns padded to their widest cell.
std::string format_table(const std::vector<std::vector<std::string>>& rows);
std::string format_status(const nlohmann::json& status);
std::string format_backends(const nlohmann::json& backends);
std::string format_node(const nlohmann::json& node);  // GET /v1/node
std::string format_sync(const nlohmann::json& sync);  // the "sync" part of GET /v1/status

}  // namespace ikelb
