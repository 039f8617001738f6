# bash completion for resmgr and resmgr-run. The operations and resource types come from the
# program itself (`resmgr --completion-words`, read from the operation catalog), the allocation
# ids and workflow ids from resmgrd (`resmgr --json status`), so none of them is listed here.

# The ids of the live allocations (or workflows, with "workflow_id"), as resmgrd reports them.
_resmgr_ids() {
    local key=$1; shift
    "$@" --json status 2>/dev/null | sed -n "s/^ *\"$key\": *\"\([A-Za-z0-9_.:-]*\)\".*/\1/p" | sort -u
}

_resmgr() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local prog=${COMP_WORDS[0]} i word socket=() words=()
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        case $word in
            --socket) socket=(--socket "${COMP_WORDS[i+1]}"); ((i++)) ;;
            --type|--since|--metric|--csv) ((i++)) ;;
            -*) ;;
            *) words+=("$word") ;;
        esac
    done
    case $prev in
        --socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --csv) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        --sort) COMPREPLY=($(compgen -W "cpu memory priority" -- "$cur")); return ;;
        --filter|--workflow) COMPREPLY=($(compgen -W "$(_resmgr_ids workflow_id "$prog" "${socket[@]}")" -- "$cur")); return ;;
    esac
    local all
    all=$("$prog" --completion-words 2>/dev/null)
    if [ ${#words[@]} -eq 0 ]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--socket --json --help --version" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$(grep -v ' ' <<<"$all")" -- "$cur"))
        fi
        return
    fi
    local op=${words[0]}
    if [ "$op" = help ] && [ ${#words[@]} -eq 1 ]; then
        COMPREPLY=($(compgen -W "$(grep -v ' ' <<<"$all")" -- "$cur"))
        return
    fi
    if [ "$op" = top ]; then
        COMPREPLY=($(compgen -W "--once --sort --filter --interval --width --help" -- "$cur"))
        return
    fi
    if [ ${#words[@]} -eq 1 ]; then
        local types
        types=$(sed -n "s/^$op \(.*\)/\1/p" <<<"$all")
        [ "$op" = usage ] && types=$(_resmgr_ids workflow_id "$prog" "${socket[@]}")
        case $op in
            release|reallocate|status|attach|detach)
                # The JSON parameters naming each live allocation, quoted for the shell.
                local id json
                COMPREPLY=($(compgen -W "$types" -- "$cur"))
                for id in $(_resmgr_ids allocation_id "$prog" "${socket[@]}"); do
                    json="{\"allocation_id\":\"$id\"}"
                    [[ $json == "${cur#\'}"* ]] && COMPREPLY+=("'$json'")
                done
                return ;;
        esac
        COMPREPLY=($(compgen -W "$types" -- "$cur"))
    fi
}

_resmgr_run() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} i
    for ((i = 1; i < COMP_CWORD; i++)); do
        [ "${COMP_WORDS[i]}" = -- ] && { COMPREPLY=($(compgen -c -- "$cur")); return; }
    done
    case $prev in
        --allocation) COMPREPLY=($(compgen -W "$(_resmgr_ids allocation_id resmgr)" -- "$cur")); return ;;
        --workflow) COMPREPLY=($(compgen -W "$(_resmgr_ids workflow_id resmgr)" -- "$cur")); return ;;
        --priority) COMPREPLY=($(compgen -W "critical high medium low" -- "$cur")); return ;;
        --exclusive|--socket) COMPREPLY=($(compgen -f -- "$cur")); return ;;
    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$("$1" --help 2>/dev/null | grep -o -- '--[a-z][a-z-]*' | sort -u)" -- "$cur"))
    else
        COMPREPLY=($(compgen -c -- "$cur"))
    fi
}

complete -F _resmgr resmgr
complete -F _resmgr_run resmgr-run
