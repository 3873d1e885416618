-- `:AuroraSearch`: `aurora/search` into a quickfix list titled "Aurora: <query>".

local client_mod = require("aurora.client")

local M = {}

--- The quickfix item of one SearchItem: lands on the name, spans the chunk.
function M.item(result, enc)
  local path = vim.uri_to_fname(result.location.uri)
  local at = result.selectionRange and result.selectionRange.start or result.location.range.start
  local lnum, col = client_mod.to_vim_pos(path, at, enc)
  local end_lnum, end_col = client_mod.to_vim_pos(path, result.location.range["end"], enc)
  return {
    filename = path,
    lnum = lnum,
    col = col,
    end_lnum = end_lnum,
    end_col = end_col,
    text = string.format("%s %s (%.2f)", result.kind, result.qualifiedName, tonumber(result.score) or 0),
  }
end

--- Runs a search; `on_done(err, result)` is called after the quickfix list is set.
function M.search(query, on_done)
  query = vim.trim(query or "")
  if query == "" then
    vim.notify("aurora: :AuroraSearch needs a query", vim.log.levels.ERROR)
    return
  end
  local bufnr = vim.api.nvim_get_current_buf()
  local client = client_mod.client_for(bufnr)
  if not client then
    vim.notify("aurora: no Aurora server is running; open a Python file of your project first", vim.log.levels.ERROR)
    return
  end
  local params = { query = query }
  if vim.bo[bufnr].buftype == "" and vim.api.nvim_buf_get_name(bufnr) ~= "" then
    -- The current place seeds spreading activation.
    params.textDocument = { uri = vim.uri_from_bufnr(bufnr) }
    params.position = require("aurora.ask").cursor_position(client)
  end
  local ok, id
  ok, id = client_mod.request(client, "aurora/search", params, function(err, result)
    client_mod.done(client.id, id)
    if err then
      vim.notify("aurora: search failed: " .. (err.message or vim.inspect(err)), vim.log.levels.ERROR)
    else
      local enc = client_mod.encoding(client)
      local items = {}
      for _, r in ipairs(result.results or {}) do
        table.insert(items, M.item(r, enc))
      end
      local title = "Aurora: " .. query
      if result.partial then
        title = title .. " (index still building)"
      end
      vim.fn.setqflist({}, " ", { title = title, items = items })
      if #items == 0 then
        vim.notify("aurora: nothing found for " .. query, vim.log.levels.INFO)
      else
        vim.cmd("copen")
      end
    end
    if on_done then
      on_done(err, result)
    end
  end, bufnr)
  if not ok then
    vim.notify("aurora: the Aurora server is not running", vim.log.levels.ERROR)
  end
end

return M
