-- Starting and attaching the Aurora language server, and the shims that hide the differences
-- between Neovim 0.7 (`vim.lsp.start_client`, `client.request`), 0.8–0.10 (`vim.lsp.start`) and
-- 0.11+ (`vim.lsp.config`/`vim.lsp.enable`, `client:request`).

local M = {}

M.PROTOCOL_VERSION = 1
M.NAME = "aurora"

local has = function(feature)
  return vim.fn.has(feature) == 1
end
M.has_011 = has("nvim-0.11")
M.has_08 = has("nvim-0.8")

local uv = vim.loop

--- Plugin state shared by the other modules.
M.state = {
  opts = nil,
  --- root -> client id (0.7 only: one client per root)
  roots = {},
  --- client id -> last aurora/didChangeStatus params
  status = {},
  --- "aurora-p-N" / "aurora-w-N" -> { on_partial = fn, on_progress = fn }
  tokens = {},
  --- server-created progress tokens still running: client id -> { token -> title }
  server_progress = {},
  --- our pending requests: { client_id, request_id }, keyed by "client:id"
  pending = {},
  --- paths of server logs, for :checkhealth and test diagnostics
  warned_missing = false,
}

local token_counter = 0
--- A fresh pair of progress tokens for one request.
function M.new_tokens()
  token_counter = token_counter + 1
  return "aurora-w-" .. token_counter, "aurora-p-" .. token_counter
end

-- ---------------------------------------------------------------------------------------------
-- Version shims

function M.request(client, method, params, handler, bufnr)
  local ok, id
  if M.has_011 then
    ok, id = client:request(method, params, handler, bufnr)
  else
    ok, id = client.request(method, params, handler, bufnr)
  end
  if ok and id then
    M.state.pending[client.id .. ":" .. id] = { client_id = client.id, request_id = id, method = method }
  end
  return ok, id
end

--- Forgets a finished request (called from every response handler we install).
function M.done(client_id, request_id)
  if request_id then
    M.state.pending[client_id .. ":" .. request_id] = nil
  end
end

function M.cancel(client, request_id)
  if M.has_011 then
    client:cancel_request(request_id)
  else
    client.cancel_request(request_id)
  end
end

function M.notify(client, method, params)
  if M.has_011 then
    return client:notify(method, params)
  end
  return client.notify(method, params)
end

function M.request_sync(client, method, params, timeout_ms, bufnr)
  if M.has_011 then
    return client:request_sync(method, params, timeout_ms, bufnr)
  end
  return client.request_sync(method, params, timeout_ms, bufnr)
end

--- Every running Aurora client.
function M.clients()
  local all
  if vim.lsp.get_clients then
    all = vim.lsp.get_clients({ name = M.NAME })
  else
    all = vim.lsp.get_active_clients()
  end
  local out = {}
  for _, c in ipairs(all) do
    if c.name == M.NAME then
      table.insert(out, c)
    end
  end
  return out
end

--- The Aurora client attached to `bufnr`, else the only/first running one.
function M.client_for(bufnr)
  bufnr = (bufnr == nil or bufnr == 0) and vim.api.nvim_get_current_buf() or bufnr
  local attached
  if vim.lsp.get_clients then
    attached = vim.lsp.get_clients({ name = M.NAME, bufnr = bufnr })
  else
    attached = {}
    for _, c in pairs(vim.lsp.buf_get_clients(bufnr)) do
      table.insert(attached, c)
    end
  end
  for _, c in ipairs(attached) do
    if c.name == M.NAME then
      return c, true
    end
  end
  local any = M.clients()
  return any[1], false
end

--- The client's position encoding ("utf-8", "utf-16" or "utf-32").
function M.encoding(client)
  return (client and client.offset_encoding) or "utf-16"
end

-- ---------------------------------------------------------------------------------------------
-- Positions: LSP characters in the negotiated encoding <-> byte columns (0-based both).

--- Width in `enc` units of the UTF-8 character starting with byte `b`, and its byte length.
local function char_units(b, enc)
  local len = b < 0x80 and 1 or b < 0xE0 and 2 or b < 0xF0 and 3 or 4
  if enc == "utf-8" then
    return len, len
  elseif enc == "utf-16" then
    return len == 4 and 2 or 1, len
  end
  return 1, len
end

--- LSP `character` -> 0-based byte column in `line` (clamped to the line end).
function M.char_to_byte(line, character, enc)
  local byte, units = 0, 0
  while byte < #line and units < character do
    local w, len = char_units(line:byte(byte + 1), enc)
    if units + w > character then
      break
    end
    units = units + w
    byte = byte + len
  end
  return byte
end

--- 0-based byte column -> LSP `character` in `enc`.
function M.byte_to_char(line, col, enc)
  local byte, units = 0, 0
  col = math.min(col, #line)
  while byte < col do
    local w, len = char_units(line:byte(byte + 1), enc)
    units = units + w
    byte = byte + len
  end
  return units
end

--- Line `lnum0` (0-based) of a file, from its buffer when loaded, else from disk.
function M.file_line(path, lnum0)
  local bufnr = vim.fn.bufnr(path)
  if bufnr ~= -1 and vim.api.nvim_buf_is_loaded(bufnr) then
    return vim.api.nvim_buf_get_lines(bufnr, lnum0, lnum0 + 1, false)[1] or ""
  end
  local ok, lines = pcall(vim.fn.readfile, path, "", lnum0 + 1)
  if not ok or type(lines) ~= "table" then
    return ""
  end
  return lines[lnum0 + 1] or ""
end

--- An LSP position in a file -> {lnum (1-based), col (1-based byte)} for quickfix and cursors.
function M.to_vim_pos(path, position, enc)
  local line = M.file_line(path, position.line)
  return position.line + 1, M.char_to_byte(line, position.character, enc) + 1
end

--- The path relative to the client's root, for labels.
function M.relative(client, path)
  local roots = {}
  if client and client.workspace_folders and client.workspace_folders ~= vim.NIL then
    for _, f in ipairs(client.workspace_folders) do
      table.insert(roots, vim.uri_to_fname(f.uri))
    end
  end
  if client and client.config and client.config.root_dir then
    table.insert(roots, client.config.root_dir)
  end
  for _, root in ipairs(roots) do
    root = root:gsub("/+$", "")
    if path:sub(1, #root + 1) == root .. "/" then
      return path:sub(#root + 2)
    end
  end
  return vim.fn.fnamemodify(path, ":~:.")
end

-- ---------------------------------------------------------------------------------------------
-- Configuration and start

local function is_dir_or_file(path)
  return uv.fs_stat(path) ~= nil
end

--- The nearest folder above `path` that holds one of `markers`, or nil.
function M.find_root(path, markers)
  local dir = vim.fn.fnamemodify(path, ":p:h")
  while dir and dir ~= "" do
    for _, marker in ipairs(markers) do
      if is_dir_or_file(dir .. "/" .. marker) then
        return dir
      end
    end
    local parent = vim.fn.fnamemodify(dir, ":h")
    if parent == dir then
      break
    end
    dir = parent
  end
  return nil
end

local function default_lsp_config()
  -- lsp/aurora.lua is also what Neovim 0.11's vim.lsp.enable("aurora") reads without the plugin.
  local ok, cfg = pcall(dofile, M.plugin_file("lsp/aurora.lua"))
  if ok and type(cfg) == "table" then
    return cfg
  end
  return {
    cmd = { "aurora", "lsp" },
    root_markers = { ".aurora", ".git", "pyproject.toml", "setup.py", "setup.cfg" },
    filetypes = { "python" },
  }
end

--- A file of this plugin, found next to this module.
function M.plugin_file(rel)
  local here = debug.getinfo(1, "S").source:sub(2)
  local root = vim.fn.fnamemodify(here, ":p:h:h:h")
  return root .. "/" .. rel
end

--- The `aurora` settings tree from the options (accepts `{aurora = {...}}` or the tree itself).
function M.settings_tree(opts)
  local s = opts.settings
  if type(s) ~= "table" then
    return vim.empty_dict()
  end
  if type(s.aurora) == "table" then
    s = s.aurora
  end
  if next(s) == nil then
    return vim.empty_dict()
  end
  return s
end

--- The client configuration shared by every start path.
function M.make_config(opts, handlers)
  local defaults = default_lsp_config()
  local tree = M.settings_tree(opts)
  local capabilities = vim.lsp.protocol.make_client_capabilities()
  capabilities.experimental = vim.tbl_extend("force", capabilities.experimental or {}, {
    aurora = { protocolVersion = M.PROTOCOL_VERSION, client = "nvim", answerView = true },
  })
  -- The Add docstring/Write tests actions may create a test file.
  capabilities.workspace = capabilities.workspace or {}
  capabilities.workspace.workspaceEdit = vim.tbl_extend("force", capabilities.workspace.workspaceEdit or {}, {
    documentChanges = true,
  })
  local filetypes = opts.filetypes or defaults.filetypes
  if filetypes == "*" or (type(filetypes) == "table" and filetypes[1] == "*") then
    filetypes = nil
  end
  return {
    name = M.NAME,
    cmd = opts.cmd or defaults.cmd,
    cmd_env = opts.cmd_env,
    root_markers = opts.root_markers or defaults.root_markers,
    filetypes = filetypes,
    init_options = tree,
    settings = { aurora = tree },
    capabilities = capabilities,
    handlers = handlers,
    on_init = function(client, result)
      local exp = result and result.capabilities and result.capabilities.experimental
      local version = type(exp) == "table" and type(exp.aurora) == "table" and exp.aurora.protocolVersion or nil
      if version ~= M.PROTOCOL_VERSION then
        local server = result and result.serverInfo and result.serverInfo.version or "unknown version"
        vim.schedule(function()
          vim.notify(
            string.format(
              "aurora: %s (%s) speaks Aurora protocol %s, this plugin speaks %d; update one of them.",
              table.concat(opts.cmd or defaults.cmd, " "),
              server,
              tostring(version),
              M.PROTOCOL_VERSION
            ),
            vim.log.levels.ERROR
          )
          if M.has_011 then
            client:stop()
          else
            client.stop()
          end
        end)
      end
    end,
    on_attach = opts.on_attach,
    on_exit = function(code, signal, client_id)
      M.state.status[client_id] = nil
      M.state.server_progress[client_id] = nil
      for root, id in pairs(M.state.roots) do
        if id == client_id then
          M.state.roots[root] = nil
        end
      end
    end,
  }
end

local function attachable(bufnr)
  if vim.bo[bufnr].buftype ~= "" then
    return false
  end
  return vim.api.nvim_buf_get_name(bufnr) ~= ""
end

local function filetype_matches(cfg, bufnr)
  if cfg.filetypes == nil then
    return true
  end
  return vim.tbl_contains(cfg.filetypes, vim.bo[bufnr].filetype)
end

--- Root for a buffer: the nearest marker folder, else the current directory if the file is
--- under it, else the file's own folder.
function M.root_for(cfg, bufnr)
  local path = vim.api.nvim_buf_get_name(bufnr)
  local root = M.find_root(path, cfg.root_markers)
  if root then
    return root
  end
  local cwd = vim.fn.getcwd()
  if path:sub(1, #cwd + 1) == cwd .. "/" then
    return cwd
  end
  return vim.fn.fnamemodify(path, ":p:h")
end

--- 0.7: one client per root, started with vim.lsp.start_client and attached per buffer.
local function attach_07(cfg, bufnr)
  local root = M.root_for(cfg, bufnr)
  local id = M.state.roots[root]
  if not id or not vim.lsp.get_client_by_id(id) then
    local c = vim.deepcopy(cfg)
    c.root_markers, c.filetypes = nil, nil
    c.root_dir = root
    c.workspace_folders = { { uri = vim.uri_from_fname(root), name = vim.fn.fnamemodify(root, ":t") } }
    id = vim.lsp.start_client(c)
    if not id then
      return
    end
    M.state.roots[root] = id
  end
  vim.lsp.buf_attach_client(bufnr, id)
end

--- 0.8–0.10: vim.lsp.start reuses a client with the same name and root.
local function attach_08(cfg, bufnr)
  local c = vim.deepcopy(cfg)
  c.root_markers, c.filetypes = nil, nil
  c.root_dir = M.root_for(cfg, bufnr)
  vim.lsp.start(c, { bufnr = bufnr })
end

--- Starts (or attaches) the server for matching buffers, now and later.
function M.start(opts, handlers)
  local cfg = M.make_config(opts, handlers)
  M.state.config = cfg
  if M.has_011 then
    -- vim.lsp.enable attaches on FileType and also handles buffers already open. The root comes
    -- from the same rule as on older versions (markers, else the current directory or the file's
    -- folder), so a project without markers still gets a workspace folder and search.
    local markers = cfg.root_markers
    cfg.root_dir = function(bufnr, on_dir)
      if attachable(bufnr) then
        on_dir(M.root_for({ root_markers = markers }, bufnr))
      end
    end
    vim.lsp.config(M.NAME, cfg)
    vim.lsp.enable(M.NAME)
    return cfg
  end
  local attach = M.has_08 and attach_08 or attach_07
  local group = vim.api.nvim_create_augroup("aurora_start", { clear = true })
  vim.api.nvim_create_autocmd("FileType", {
    group = group,
    pattern = cfg.filetypes or "*",
    callback = function(args)
      if attachable(args.buf) and filetype_matches(cfg, args.buf) then
        attach(cfg, args.buf)
      end
    end,
  })
  for _, bufnr in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(bufnr) and attachable(bufnr) and filetype_matches(cfg, bufnr) then
      attach(cfg, bufnr)
    end
  end
  return cfg
end

--- The resolved server command (`cmd[1]` as a path), or nil and why.
function M.binary(opts)
  local cmd = (opts and opts.cmd) or (M.state.config and M.state.config.cmd) or default_lsp_config().cmd
  local exe = cmd[1]
  if vim.fn.executable(exe) == 1 then
    return vim.fn.exepath(exe), cmd
  end
  return nil, cmd
end

return M
