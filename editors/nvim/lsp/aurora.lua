-- Neovim 0.11+: with this plugin on the runtimepath, `vim.lsp.enable("aurora")` starts the Aurora
-- language server for Python buffers with no other set-up (standard LSP features only; the
-- :Aurora* commands and the streaming answer view come with require("aurora").setup{}).
return {
  cmd = { "aurora", "lsp" },
  root_markers = { ".aurora", ".git", "pyproject.toml", "setup.py", "setup.cfg" },
  filetypes = { "python" },
}
