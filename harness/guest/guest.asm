; guest.asm: a 512-byte BIOS boot sector that repaints the whole screen on
; every key, so a SPICE client sees a full-screen draw per key press.
;
; Build: nasm -f bin -o harness/guest/guest.img harness/guest/guest.asm
; (`make guest`). The Go package in this directory embeds guest.img and
; exports the addresses below; keep them in step with guest.go.
;
; On every key read with int 16h it:
;   - adds one to a 32-bit key counter at physical 0x7E00 (COUNTER),
;   - stores the BIOS key word (AL = ASCII, AH = scancode) at 0x7E04 (LASTKEY),
;   - fills the 80x25 text buffer at 0xB800 with the next background colour,
;   - writes ">> ", the key (or '?' when not printable), its scancode in hex
;     and the counter in decimal on the top row.
; The cursor is hidden and no attribute blinks, so the screen changes only
; when a key arrives: no key, no draw.

bits 16
org 0x7c00

COUNTER equ 0x7e00
LASTKEY equ 0x7e04
TEXTSEG equ 0xb800

start:
    cli
    xor ax, ax
    mov ds, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    cld
    mov ax, 0x0003              ; 80x25 colour text mode
    int 0x10
    mov ah, 0x01                ; hide the cursor (CH bit 5): nothing blinks
    mov cx, 0x2000
    int 0x10
    xor eax, eax
    mov [COUNTER], eax
    mov [LASTKEY], ax
    mov byte [attr], 0x1f       ; white on blue
    call paint

next_key:
    mov ah, 0x10                ; extended read: keeps the 0xE0 of grey keys
    int 0x16                    ; AH = scancode, AL = ASCII
    mov [LASTKEY], ax
    inc dword [COUNTER]
    mov al, [attr]
    add al, 0x10                ; next background colour
    and al, 0x7f                ; background 0..7: never the blink bit
    mov [attr], al
    call paint
    jmp next_key

; paint fills the screen with attr and writes the status line.
paint:
    push es
    mov ax, TEXTSEG
    mov es, ax
    xor di, di
    mov ah, [attr]
    mov al, ' '
    mov cx, 80*25
    rep stosw
    xor di, di
    mov al, '>'
    stosw
    stosw
    mov al, ' '
    stosw
    mov al, [LASTKEY]           ; the key's ASCII, '?' when not printable
    cmp al, 0x20
    jb .unprintable
    cmp al, 0x7e
    jbe .printable
.unprintable:
    mov al, '?'
.printable:
    stosw
    mov al, ' '
    stosw
    mov bl, [LASTKEY+1]         ; scancode as two hex digits
    mov cl, 4
    call hexdigit
    mov cl, 0
    call hexdigit
    mov al, ' '
    stosw
    mov eax, [COUNTER]          ; counter in decimal
    mov ebx, 10
    xor cx, cx
.divide:
    xor edx, edx
    div ebx
    push dx
    inc cx
    test eax, eax
    jnz .divide
    mov ah, [attr]
.digit:
    pop dx
    mov al, dl
    add al, '0'
    stosw
    loop .digit
    pop es
    ret

; hexdigit writes the nibble of BL selected by shifting right CL bits.
hexdigit:
    mov al, bl
    shr al, cl
    and al, 0x0f
    add al, '0'
    cmp al, '9'
    jbe .out
    add al, 'A' - '9' - 1
.out:
    mov ah, [attr]
    stosw
    ret

attr: db 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
